"""Which files are Sunbid's data, and whether a backup of them is whole.

The data directory is read, not listed in code: every SQLite database in it
is copied with SQLite's backup API and every other regular file (the VAPID
key, and any key a later version keeps there) is copied as it is. Left out
are what a running server makes and needs no copy of: the lock file, SQLite's
`-wal`/`-shm`/`-journal` companions (the backup API reads through them),
`*.log`, hidden temporary files, and folders (earlier restores' set-aside
files among them). The log is wherever SUNBID_DATABASE_URL points, usually
`sunbid.db` in the data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from server.backup import BackupError
from server.core.clock import Clock
from server.core.events import GENESIS_HASH
from server.datalock import LOCK_FILE
from server.store import open_store

MANIFEST = "manifest.json"
FORMAT = "sunbid-backup/1"
SQLITE_MAGIC = b"SQLite format 3\x00"
COMPANIONS = ("-wal", "-shm", "-journal")
POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class DataFile:
    name: str  # its name in the backup
    kind: str  # "log" (the event log), "database" (another SQLite file) or "file"
    path: Path  # where it lives in the data directory


@dataclass(frozen=True)
class Manifest:
    created_at: str
    head_seq: int | None  # None: no log in the backup (PostgreSQL keeps it)
    head_hash: str | None
    files: list[dict[str, Any]]  # name, kind, bytes, sha256

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files)


def log_path(database_url: str) -> Path | None:
    """The SQLite log's file; None when the log is in PostgreSQL."""
    scheme = database_url.partition(":")[0]
    if scheme == "sqlite":
        return Path(database_url.removeprefix("sqlite:///"))
    if scheme in POSTGRES_SCHEMES:
        return None
    raise BackupError(f"SUNBID_DATABASE_URL: unsupported scheme {scheme!r}")


def is_postgres(database_url: str) -> bool:
    return database_url.partition(":")[0] in POSTGRES_SCHEMES


def data_files(data_dir: Path, log: Path | None) -> list[DataFile]:
    """The files to copy, in the order to copy them: plain files, then the
    databases derived from the log (push.db, compliance.db …), then the log.

    The log goes last so that no copied projection has applied an event the
    copied log lacks: a projection's cursor may only be behind, and catches up
    from the log when a server starts on the restored files.
    """
    plain: list[DataFile] = []
    databases: list[DataFile] = []
    names = sorted(os.listdir(data_dir)) if data_dir.is_dir() else []
    for name in names:
        path = data_dir / name
        if log is not None and _same_file(path, log):
            continue
        if _transient(name) or not path.is_file():
            continue
        if is_sqlite(path):
            databases.append(DataFile(name, "database", path))
        else:
            plain.append(DataFile(name, "file", path))
    files = plain + databases
    if log is not None:
        if not log.is_file():
            raise BackupError(f"the event log {log} does not exist (SUNBID_DATABASE_URL)")
        if any(f.name == log.name for f in files):
            raise BackupError(f"the data directory holds another file named {log.name}")
        files.append(DataFile(log.name, "log", log))
    return files


def companions(path: Path) -> Iterable[Path]:
    """The SQLite files that belong with `path`, where they exist."""
    for suffix in COMPANIONS:
        other = path.with_name(path.name + suffix)
        if other.exists():
            yield other


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _transient(name: str) -> bool:
    return (
        name == LOCK_FILE
        or name.startswith(".")
        or name.endswith(COMPANIONS)
        or name.endswith(".log")
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the manifest ---------------------------------------------------------------------------


def write_manifest(
    directory: Path, files: list[DataFile], head: tuple[int, str] | None
) -> Manifest:
    """Describe the copies in `directory` (sizes and SHA-256 read from the copies)."""
    entries = [
        {
            "name": f.name,
            "kind": f.kind,
            "bytes": (directory / f.name).stat().st_size,
            "sha256": sha256_of(directory / f.name),
        }
        for f in files
    ]
    manifest = Manifest(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        head_seq=head[0] if head else None,
        head_hash=head[1] if head else None,
        files=entries,
    )
    document = {
        "format": FORMAT,
        "created_at": manifest.created_at,
        "head": {"seq": manifest.head_seq, "hash": manifest.head_hash} if head else None,
        "files": entries,
    }
    write_synced(directory / MANIFEST, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return manifest


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(
            f"{directory} has no {MANIFEST}: it is not a Sunbid backup, or an unfinished one"
        ) from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    try:
        if document["format"] != FORMAT:
            raise BackupError(f"{path}: unknown format {document['format']!r}, expected {FORMAT}")
        head = document["head"]
        files = document["files"]
        for entry in files:
            name = entry["name"]
            if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
                raise BackupError(f"{path}: {name!r} is not a plain file name")
            if entry["kind"] not in ("log", "database", "file"):
                raise BackupError(f"{path}: {name} has an unknown kind {entry['kind']!r}")
            int(entry["bytes"])
            str(entry["sha256"])
        logs = [e for e in files if e["kind"] == "log"]
        if len(logs) > 1 or (head is None) != (not logs):
            raise BackupError(f"{path}: the head and the log file do not go together")
        return Manifest(
            created_at=str(document["created_at"]),
            head_seq=None if head is None else int(head["seq"]),
            head_hash=None if head is None else str(head["hash"]),
            files=list(files),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None


# --- checking copies ------------------------------------------------------------------------


def check_backup(directory: Path, manifest: Manifest, timezone: ZoneInfo) -> None:
    """Raise BackupError unless every file is whole and sound: sizes and
    checksums as listed, then `check_sound`."""
    for entry in manifest.files:
        path = directory / entry["name"]
        if not path.is_file():
            raise BackupError(f"{path} is missing")
        if path.stat().st_size != int(entry["bytes"]) or sha256_of(path) != entry["sha256"]:
            raise BackupError(f"{path} differs from the manifest (size or SHA-256): damaged")
    check_sound(directory, manifest, timezone)


def check_sound(directory: Path, manifest: Manifest, timezone: ZoneInfo) -> None:
    """`PRAGMA integrity_check` on each database, and the log's hash chain
    intact up to the head the manifest names."""
    for entry in manifest.files:
        if entry["kind"] != "file":
            check_integrity(directory / entry["name"])
    log = next((e for e in manifest.files if e["kind"] == "log"), None)
    if log is not None:
        head = check_chain(directory / log["name"], timezone)
        if head != (manifest.head_seq, manifest.head_hash):
            raise BackupError(
                f"the log in {directory} ends at seq {head[0]}, but the manifest "
                f"names seq {manifest.head_seq}: damaged"
            )


def check_integrity(path: Path) -> None:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a sound SQLite database: {exc}") from None
    if rows != [("ok",)]:
        found = "; ".join(str(r[0]) for r in rows[:3])
        raise BackupError(f"{path} fails SQLite's integrity check: {found}")


def check_chain(path: Path, timezone: ZoneInfo) -> tuple[int, str]:
    """Re-compute the copied log's hash chain (as `sunbid verify` does); its head."""

    async def verify() -> tuple[int, str]:
        store = open_store(f"sqlite:///{path}", Clock(timezone), readonly=True)
        report = await store.verify()
        if report.first_bad_seq is not None:
            raise BackupError(
                f"the log {path} is BAD at seq {report.first_bad_seq}: {report.reason}"
            )
        return read_head(path) if report.head else (0, GENESIS_HASH)

    try:
        return asyncio.run(verify())
    except BackupError:
        raise
    except Exception as exc:  # a damaged file may fail in any way; never a traceback
        raise BackupError(
            f"the log {path} cannot be checked: {type(exc).__name__}: {exc}"
        ) from None


def read_head(path: Path) -> tuple[int, str]:
    """The last seq in a log file and its hash (GENESIS_HASH for an empty log)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT seq, doc FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the log {path} cannot be read: {exc}") from None
    finally:
        connection.close()
    if row is None:
        return 0, GENESIS_HASH
    return int(row[0]), str(orjson.loads(row[1])["hash"])


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
