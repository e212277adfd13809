"""`sunbid restore PATH`: put a backup back, with the server stopped.

Nothing is overwritten before everything is known to be good: the lock that
a running server holds is taken first (and kept, so no server starts
midway), the backup is copied into a hidden folder in the data directory and
checked there (manifest, SHA-256, integrity, hash chain) — so the bytes
checked are the bytes used. Only then are the current data files moved, with
their `-wal` and `-shm` (which may hold their latest commits), into a dated
folder in the data directory, and the copies take their place. Nothing is
ever deleted: the set-aside folder is the way back.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from server.backup import BackupError
from server.backup.files import (
    Manifest,
    check_backup,
    companions,
    data_files,
    read_manifest,
    sync_file,
)
from server.datalock import lock_data_dir, unlock_data_dir


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    set_aside: Path | None  # where the files it replaced went; None if there were none


def restore_backup(source: Path, data_dir: Path, log: Path | None, timezone: ZoneInfo) -> Restored:
    """`log` None: the log is in PostgreSQL; only the data directory's files come back."""
    source = source.absolute()
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory")
    lock = lock_data_dir(data_dir, "sunbid restore")  # DataDirBusy while a server runs
    try:
        return _restore_locked(source, data_dir, log, timezone)
    finally:
        unlock_data_dir(lock)


def _restore_locked(source: Path, data_dir: Path, log: Path | None, timezone: ZoneInfo) -> Restored:
    try:
        manifest = read_manifest(source)
        _check_kind(manifest, log)
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    except (BackupError, OSError) as exc:
        raise BackupError(f"nothing was restored: {exc}") from None
    try:
        try:
            for entry in manifest.files:
                if not (source / entry["name"]).is_file():
                    raise BackupError(f"{source / entry['name']} is missing")
                shutil.copy2(source / entry["name"], staging / entry["name"])
                sync_file(staging / entry["name"])
            check_backup(staging, manifest, timezone)
        except (BackupError, OSError) as exc:
            raise BackupError(f"nothing was restored: {exc}") from None
        folder = _set_aside_folder(data_dir)
        try:
            _set_aside(data_dir, log, manifest, folder)
            for entry in manifest.files:
                destination = _destination(entry, data_dir, log)
                shutil.move(staging / entry["name"], destination)
                sync_file(destination.parent)
        except OSError as exc:
            raise BackupError(
                f"the restore stopped halfway ({exc}); the files it replaced are in "
                f"{folder}: move them back before starting a server"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not any(folder.iterdir()):
        folder.rmdir()  # there was nothing to set aside
        return Restored(manifest, None)
    return Restored(manifest, folder)


def _check_kind(manifest: Manifest, log: Path | None) -> None:
    has_log = manifest.head_seq is not None
    if has_log and log is None:
        raise BackupError(
            "this backup holds a SQLite event log, but SUNBID_DATABASE_URL points to "
            "PostgreSQL: restore the log with PostgreSQL's tools (see the docs)"
        )
    if not has_log and log is not None:
        raise BackupError(
            "this backup holds no event log (it was made with the log in PostgreSQL); "
            "restoring it beside a SQLite log would mix two histories"
        )


def _set_aside_folder(data_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = data_dir / f"replaced-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = data_dir / f"replaced-{stamp}-{suffix}"
    folder.mkdir(mode=0o700)
    return folder


def _set_aside(data_dir: Path, log: Path | None, manifest: Manifest, folder: Path) -> None:
    """Move the current data files, whatever a restored file would replace, and
    the SQLite companions of both (a stray `-wal` must never be paired with a
    restored database) into `folder`."""
    current = [f.path for f in data_files(data_dir, log if log and log.exists() else None)]
    targets = [_destination(entry, data_dir, log) for entry in manifest.files]
    moving: list[Path] = []
    for path in [*current, *targets]:
        for candidate in (path, *companions(path)):
            if candidate.exists() and candidate not in moving:
                moving.append(candidate)
    for path in moving:
        shutil.move(path, folder / path.name)
    sync_file(data_dir)


def _destination(entry: dict[str, Any], data_dir: Path, log: Path | None) -> Path:
    if entry["kind"] == "log" and log is not None:
        return log
    return data_dir / str(entry["name"])
