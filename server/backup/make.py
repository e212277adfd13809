"""`sunbid backup PATH`: a consistent copy of the data while the server runs.

Each database is copied with SQLite's online backup API inside one read
transaction on the source. In WAL mode that transaction is a snapshot: the
copy is the database as of one commit, publishers keep committing beside it
and never wait for it (the WAL only grows meanwhile, as no checkpoint can
pass the snapshot). Without the held snapshot a stepped backup starts over
whenever another process commits, and under steady publishing it never ends.

The copy is built in a hidden folder beside PATH, checked (integrity and the
hash chain), and given its name only when whole (manifest last): a failed or
interrupted backup leaves nothing that looks like a backup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from server.backup import BackupError
from server.backup.files import (
    DataFile,
    Manifest,
    check_sound,
    data_files,
    read_head,
    sync_file,
    write_manifest,
)

PAGES_PER_STEP = 1024  # 4 MiB of 4 KiB pages between the steps of one copy


class TargetNotEmpty(BackupError):
    """PATH exists and holds something: a backup never overwrites."""


def make_backup(data_dir: Path, log: Path | None, target: Path, timezone: ZoneInfo) -> Manifest:
    """Copy every data file into `target` (new, or an empty directory), check
    the copy, and write its manifest. `log` None: the log is not a SQLite file
    here (PostgreSQL), only the data directory is copied."""
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TargetNotEmpty(
            f"{target} exists and is not an empty directory; a backup needs a new or "
            "empty one (it never overwrites)"
        )
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} does not exist")
    files = data_files(data_dir, log)
    # mkdtemp makes it 0700: the backup holds the VAPID private key and token digests.
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        for file in files:
            copy_file(file, building / file.name)
        head = read_head(building / files[-1].name) if log is not None else None
        manifest = write_manifest(building, files, head)
        # The manifest's checksums were just read from these very copies: what
        # is left to check is that they are sound (a restore checks both).
        check_sound(building, manifest, timezone)
        sync_file(building)
        os.rename(building, target)  # replaces an empty directory, refuses anything else
        sync_file(target.parent)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def copy_file(file: DataFile, destination: Path) -> None:
    if file.kind == "file":
        shutil.copy2(file.path, destination)
    else:
        copy_database(file.path, destination)
    sync_file(destination)


def copy_database(source: Path, destination: Path, pages_per_step: int = PAGES_PER_STEP) -> None:
    try:
        reader = sqlite3.connect(source, isolation_level=None, timeout=10)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        reader.execute("PRAGMA query_only=1")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the snapshot
        copy = sqlite3.connect(destination, isolation_level=None)
        try:
            reader.backup(copy, pages=pages_per_step)
            # One self-contained file: no -wal or -shm beside the copy. A
            # server started on it switches it back to WAL.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"copying {source} failed: {exc}") from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            reader.execute("COMMIT")
        reader.close()
