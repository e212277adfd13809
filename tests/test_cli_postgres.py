"""`sunbid verify`, `rebuild`, `migrate`, `backup` with the log in PostgreSQL:
edits made with SQL on the schema (as an operator or attacker would) are
named, a rebuild puts the derived records right, and migrate says what it
does to a PostgreSQL schema. Real processes, a fresh schema per test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import ServerProcess
from tests.services import free_port, postgres_schema


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[ServerProcess]:
    """A stopped deployment on PostgreSQL holding the demo's history."""
    with postgres_schema() as (url, schema):
        env = {"SUNBID_DATABASE_URL": url, "SUNBID_DATABASE_SCHEMA": schema}
        ServerProcess(tmp_path / "data", **env, SUNBID_DEMO="1").start().stop()
        yield ServerProcess(tmp_path / "data", **env)


def sql(server: ServerProcess, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(
            server.env["SUNBID_DATABASE_URL"],
            server_settings={"search_path": server.env["SUNBID_DATABASE_SCHEMA"]},
        )
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def verify(server: ServerProcess) -> tuple[int, str]:
    result = server.cli("verify")
    return result.returncode, result.stdout + result.stderr


def test_intact_data_verifies(deployment: ServerProcess) -> None:
    code, out = verify(deployment)
    assert code == 0, out
    assert "ok: 120 events, head 120, hash chain intact" in out
    assert "ok: projects is what the log yields" in out


def test_an_edited_event_is_a_bad_seq(deployment: ServerProcess) -> None:
    sql(
        deployment,
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "UPDATE events SET doc = convert_to(replace(convert_from(doc, 'UTF8'), '公告', '通知'),"
        " 'UTF8') WHERE seq = (SELECT MIN(seq) FROM events WHERE convert_from(doc, 'UTF8')"
        " LIKE '%公告%')",
    )
    code, out = verify(deployment)
    assert code == 1
    assert "BAD at seq" in out and "the hash does not match" in out, out


def test_a_missing_tail_is_named(deployment: ServerProcess) -> None:
    sql(
        deployment,
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "DELETE FROM events WHERE seq > 118",
    )
    code, out = verify(deployment)
    assert code == 1 and "BAD at seq 119: seq 119..120 are missing from the end" in out, out


def test_an_edited_project_row_is_named_and_rebuilt(deployment: ServerProcess) -> None:
    sql(
        deployment, "UPDATE projects SET title = 'edited' WHERE id = (SELECT MIN(id) FROM projects)"
    )
    code, out = verify(deployment)
    assert code == 1 and "BAD in projects:" in out and "title 'edited'" in out, out

    rebuilt = deployment.cli("rebuild")

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt projects from the log (head 120)" in rebuilt.stdout
    code, out = verify(deployment)
    assert code == 0, out


def test_migrate_reports_the_schema_current(deployment: ServerProcess) -> None:
    result = deployment.cli("migrate")
    assert result.returncode == 0, result.stderr
    schema = deployment.env["SUNBID_DATABASE_SCHEMA"]
    assert f"PostgreSQL schema {schema}: events at version 1, current" in result.stdout
    assert "up to date, nothing to do" in result.stdout


def test_migrate_refuses_a_schema_from_a_newer_version(deployment: ServerProcess) -> None:
    sql(deployment, "UPDATE schema_versions SET version = 99 WHERE name = 'events'")
    result = deployment.cli("migrate")
    assert result.returncode == 1
    assert "events is at version 99, this code's is 1" in result.stderr, result.stderr
    assert "newer Sunbid" in result.stderr


def test_migrate_does_not_create_a_schema_it_only_reads(tmp_path: Path) -> None:
    with postgres_schema() as (url, schema):
        server = ServerProcess(
            tmp_path / "data", SUNBID_DATABASE_URL=url, SUNBID_DATABASE_SCHEMA=schema
        )
        result = server.cli("migrate")
        assert result.returncode == 0, result.stderr
        assert "no Sunbid tables yet" in result.stdout

        async def exists() -> bool:
            conn = await asyncpg.connect(url)
            try:
                found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
                return found is not None
            finally:
                await conn.close()

        assert not asyncio.run(exists())


@pytest.mark.parametrize("command", ["verify", "migrate", "token list"])
def test_postgresql_unreachable_is_a_message_not_a_traceback(tmp_path: Path, command: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    server = ServerProcess(tmp_path / "data", SUNBID_DATABASE_URL=url)
    result = server.cli(*command.split())
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_backup_names_the_postgresql_tools(deployment: ServerProcess, tmp_path: Path) -> None:
    result = deployment.cli("backup", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stderr
    schema = deployment.env["SUNBID_DATABASE_SCHEMA"]
    assert "pg_dump" in result.stderr and f"--schema={schema}" in result.stderr, result.stderr
    restore = deployment.cli("restore", str(tmp_path / "backup"))
    assert "pg_restore" in restore.stderr, restore.stderr


def test_a_server_refuses_a_schema_from_a_newer_version(deployment: ServerProcess) -> None:
    sql(deployment, "UPDATE schema_versions SET version = 99 WHERE name = 'events'")
    with pytest.raises(RuntimeError, match="written by a newer Sunbid"):
        deployment.start()
    assert deployment.process is not None and deployment.process.wait(10) == 2
