"""Moving a SQLite deployment to PostgreSQL: `sunbid copy-to` carries the
chain byte for byte, the tokens and the idempotency keys; `sunbid verify`
passes on the target, and a server started there continues the chain.
Real processes, a real SQLite data directory and a fresh PostgreSQL schema."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from server.core.events import chain_hash
from tests.conftest import ServerProcess, Staff, with_facts
from tests.services import postgres_schema
from tests.test_verify import FIXTURE


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    with postgres_schema() as found:
        yield found


@pytest.fixture
def sqlite_deployment(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, dict[str, object]]]:
    """A stopped SQLite deployment: the demo's history, a token, a keyed publication."""
    server = ServerProcess(tmp_path / "data", SUNBID_DEMO="1").start()
    try:
        token = server.token("desk", "admin")
        staff = Staff(server, token)
        staff.project("MOVE-1")
        keyed = staff.client.post(
            "/api/projects/MOVE-1/events",
            json=with_facts("notice", title="招标公告"),
            headers={"Idempotency-Key": "move-key-1"},
        )
        assert keyed.status_code == 201, keyed.text
        # The public's cases are not in the log: they must come along too.
        asked = httpx.post(
            server.url + "/api/projects/MOVE-1/enquiries",
            json={"question": "工期多长？", "contact": "13900000001"},
        ).json()
        answered = staff.client.post(
            f"/api/enquiries/{asked['id']}/answer", json={"answer": "365日历天"}
        )
        assert answered.status_code == 201, answered.text
        requested = httpx.post(
            server.url + "/api/disclosure-requests",
            json={"agency": "YW-GGZY", "subject": "合同", "description": "请公开", "contact": "x"},
        ).json()
        staff.client.close()
    finally:
        server.stop()
    yield server, token, {**keyed.json(), "asked": asked, "requested": requested}


def rows(url: str, schema: str, sql: str) -> list[tuple[object, ...]]:
    async def fetch() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def on_postgres(server: ServerProcess, database: tuple[str, str]) -> ServerProcess:
    url, schema = database
    return ServerProcess(server.data_dir, SUNBID_DATABASE_URL=url, SUNBID_DATABASE_SCHEMA=schema)


def test_a_copied_deployment_verifies_and_continues_the_chain(
    sqlite_deployment: tuple[ServerProcess, str, dict[str, object]],
    database: tuple[str, str],
) -> None:
    server, token, keyed = sqlite_deployment
    url, schema = database
    log = server.data_dir / "sunbid.db"
    source = sqlite_rows(log, "SELECT seq, project, stage, doc FROM events ORDER BY seq")
    head = len(source)
    assert head > 100  # the demo's history and ours

    copied = server.cli("copy-to", url, "--schema", schema)

    assert copied.returncode == 0, copied.stderr
    # Two keys: the keyed publication's, and the answer's (one answer per enquiry).
    assert f"copied {head} events, 1 tokens, 2 idempotency keys and 0 push" in copied.stdout
    assert "and 2 cases into PostgreSQL" in copied.stdout
    assert f"ok: {head} events, head {head}, hash chain intact" in copied.stdout
    assert "ok: projects is what the log yields" in copied.stdout
    target = rows(url, schema, "SELECT seq, project, stage, doc FROM events ORDER BY seq")
    assert target == source  # byte for byte, in seq order
    last_hash = orjson.loads(source[-1][3])["hash"]  # type: ignore[arg-type]
    assert rows(url, schema, "SELECT seq, hash FROM log_head") == [(head, last_hash)]

    moved = on_postgres(server, database)
    verified = moved.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok: {head} events, head {head}, hash chain intact" in verified.stdout

    moved.start()
    try:
        assert moved.head() == head
        staff = Staff(moved, token)  # the token came along
        again = staff.client.post(
            "/api/projects/MOVE-1/events",
            json=with_facts("notice", title="招标公告"),
            headers={"Idempotency-Key": "move-key-1"},
        )
        assert again.status_code == 200 and again.json()["seq"] == keyed["seq"], again.text
        event = staff.publish("MOVE-1", "clarification")
        staff.client.close()
        assert event["seq"] == head + 1
        body = {k: v for k, v in event.items() if k != "hash"}
        assert event["hash"] == chain_hash(str(last_hash), body)
        listed = httpx.get(moved.url + "/api/projects/MOVE-1").json()
        assert listed["id"] == "MOVE-1"
        for path, case in (
            ("enquiries", keyed["asked"]),
            ("disclosure-requests", keyed["requested"]),
        ):
            assert isinstance(case, dict)
            mine = httpx.get(
                f"{moved.url}/api/{path}/{case['id']}", headers={"X-Ticket": case["ticket"]}
            )
            assert mine.status_code == 200, mine.text
        mine = httpx.get(
            f"{moved.url}/api/enquiries/{keyed['asked']['id']}",  # type: ignore[index]
            headers={"X-Ticket": keyed["asked"]["ticket"]},  # type: ignore[index]
        ).json()
        assert mine["question"] == "工期多长？" and mine["answer"]["answer"] == "365日历天"
    finally:
        moved.stop()
    after = moved.cli("verify")
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"ok: {head + 1} events, head {head + 1}, hash chain intact" in after.stdout


def test_a_target_holding_anything_is_refused_and_kept(
    sqlite_deployment: tuple[ServerProcess, str, dict[str, object]],
    database: tuple[str, str],
) -> None:
    server, _, _ = sqlite_deployment
    url, schema = database
    assert server.cli("copy-to", url, "--schema", schema).returncode == 0
    before = rows(url, schema, "SELECT COUNT(*), MAX(seq) FROM events")

    again = server.cli("copy-to", url, "--schema", schema)

    assert again.returncode == 1
    assert "nothing was copied: the target schema is not empty" in again.stderr, again.stderr
    assert rows(url, schema, "SELECT COUNT(*), MAX(seq) FROM events") == before
    assert rows(url, schema, "SELECT COUNT(*) FROM tokens") == [(1,)]


def test_a_damaged_chain_is_not_carried_over(
    sqlite_deployment: tuple[ServerProcess, str, dict[str, object]],
    database: tuple[str, str],
) -> None:
    server, _, _ = sqlite_deployment
    url, schema = database
    log = server.data_dir / "sunbid.db"
    with sqlite3.connect(log) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute(
            "UPDATE events SET doc = CAST(REPLACE(doc, '公告', '通知') AS BLOB) WHERE seq = 5"
        )

    refused = server.cli("copy-to", url, "--schema", schema)

    assert refused.returncode == 1
    assert "the SQLite log is damaged at seq 5" in refused.stderr, refused.stderr
    assert rows(url, schema, "SELECT COUNT(*) FROM events") == [(0,)]
    assert rows(url, schema, "SELECT seq FROM log_head") == [(0,)]


def test_copy_to_refuses_while_a_server_runs_on_the_sqlite_log(
    tmp_path: Path, database: tuple[str, str]
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        refused = server.cli("copy-to", database[0], "--schema", database[1])
    finally:
        server.stop()
    assert refused.returncode == 1 and "stop the server first" in refused.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["mysql://db/x"], "is not a postgresql:// URL"),
        (["postgresql://db/x", "--schema", "Bad-Name"], "--schema: 'Bad-Name' is not a plain"),
    ],
)
def test_bad_arguments_are_refused_before_anything(
    tmp_path: Path, args: list[str], says: str
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    server.stop()
    refused = server.cli("copy-to", *args)
    assert refused.returncode == 2 and says in refused.stderr, refused.stderr


def test_copy_to_from_postgresql_is_refused(tmp_path: Path, database: tuple[str, str]) -> None:
    moved = ServerProcess(
        tmp_path / "data", SUNBID_DATABASE_URL=database[0], SUNBID_DATABASE_SCHEMA=database[1]
    )
    refused = moved.cli("copy-to", database[0], "--schema", "other")
    assert refused.returncode == 2 and "PostgreSQL already" in refused.stderr


def test_a_migrated_older_deployment_moves_with_its_derived_records(
    tmp_path: Path, database: tuple[str, str]
) -> None:
    """The pre-issue fixture: events published before their projects' `registered`
    events (appended by the migration), push subscriptions and warnings in the
    data directory. All of it verifies on PostgreSQL after the copy."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data, ignore=shutil.ignore_patterns("secrets.json"))
    old = ServerProcess(data)
    refused = old.cli("copy-to", database[0], "--schema", database[1])
    assert refused.returncode == 2 and "sunbid migrate" in refused.stderr, refused.stderr
    assert old.cli("migrate").returncode == 0
    assert old.cli("rebuild").returncode == 0  # its warnings under today's rules

    copied = old.cli("copy-to", database[0], "--schema", database[1])

    assert copied.returncode == 0, copied.stdout + copied.stderr
    verified = on_postgres(old, database).cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for record in ("projects", "push"):
        assert f"ok: {record} is what the log yields" in verified.stdout, verified.stdout
    # Derived again from the log at the first start on PostgreSQL, not copied.
    assert "ok: compliance was made with other rules" in verified.stdout
    # The subscriptions (not derived: people's own) came along, ids and all.
    subscriptions = (
        "SELECT id, endpoint, p256dh, auth, topics, stages FROM subscriptions ORDER BY id"
    )
    wanted = sqlite_rows(data / "push.db", subscriptions)
    assert wanted, "the fixture has subscriptions"
    assert rows(*database, subscriptions) == wanted
    assert rows(*database, "SELECT seq FROM cursor") == sqlite_rows(
        data / "push.db", "SELECT seq FROM cursor"
    )
