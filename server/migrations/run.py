"""Reading each file's schema version, and running the steps it lacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from server.core.versions import is_empty, schema_version
from server.migrations import MigrationError
from server.migrations.steps import LATEST, STEPS, Step
from server.store import EventStore

# kind ("events", "push", "compliance") → the file, or None where there is
# none to migrate here (a PostgreSQL log).
DataFiles = Mapping[str, Path | None]


@dataclass(frozen=True)
class FileVersion:
    kind: str
    path: Path
    version: int | None  # None: no file yet, or no table (made at the current version)
    latest: int

    @property
    def behind(self) -> bool:
        return self.version is not None and self.version < self.latest

    @property
    def ahead(self) -> bool:
        return self.version is not None and self.version > self.latest

    def describe(self) -> str:
        return f"{self.path.name} is at schema version {self.version}, this code's is {self.latest}"


async def read_versions(files: DataFiles) -> list[FileVersion]:
    found = []
    for kind, path in files.items():
        if path is None:
            continue
        found.append(FileVersion(kind, path, await _version(path), LATEST[kind]))
    return found


def refusal(found: list[FileVersion], data_dir: Path) -> str | None:
    """Why a server must not start on these files, naming the command; or None."""
    if ahead := [f for f in found if f.ahead]:
        return (
            f"the data directory {data_dir} was written by a newer Sunbid "
            f"({'; '.join(f.describe() for f in ahead)}): run that version"
        )
    if behind := [f for f in found if f.behind]:
        return (
            f"the data directory {data_dir} was written by an older Sunbid "
            f"({'; '.join(f.describe() for f in behind)}): stop every server on it, "
            "back it up (`sunbid backup`), then run `sunbid migrate`"
        )
    return None


async def migrate(files: DataFiles, store: Callable[[], EventStore]) -> list[str]:
    """Run every step each file lacks, in order; what was done, one line each.

    `store` opens the log for the steps that append to it. Nothing to do
    (every file current) is an empty list: running twice changes nothing.
    """
    found = await read_versions(files)
    if ahead := [f for f in found if f.ahead]:
        raise MigrationError("; ".join(f.describe() for f in ahead) + ": run that version")
    done: list[str] = []
    for file in found:
        if file.version is None:
            continue  # created at the current version when first opened
        for step in STEPS[file.kind][file.version :]:
            done.append(
                f"{file.path.name}: {step.version}. {step.what}{await _run(file, step, store)}"
            )
    return done


async def _run(file: FileVersion, step: Step, store: Callable[[], EventStore]) -> str:
    note = ""
    if step.append is not None:
        log = store()
        await log.open()
        try:
            note = f" ({await step.append(log, file.path)} events appended)"
        finally:
            await log.close()
    async with aiosqlite.connect(file.path, isolation_level=None) as conn:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in step.sql:
                await conn.execute(statement)
            # In the same transaction: the schema change and the version agree.
            await conn.execute(f"PRAGMA user_version = {int(step.version)}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return note


async def _version(path: Path) -> int | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA busy_timeout=5000")
        if await is_empty(conn):
            return None
        return await schema_version(conn)
