"""`sunbid migrate`: a data directory written before projects were events
(tests/fixtures/pre-issue9, made by commit d750545) is brought up to date
and served by today's server with nothing lost; schema versions refuse what
this code must not open."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.core import versions
from server.migrations.run import FileVersion, refusal
from server.migrations.steps import LATEST, STEPS
from tests.conftest import ROOT, ServerProcess, free_port
from tests.push_service import PushService

FIXTURE = ROOT / "tests" / "fixtures" / "pre-issue9"
SECRETS = orjson.loads((FIXTURE / "secrets.json").read_bytes())
FILES = {"events": "sunbid.db", "push": "push.db", "compliance": "compliance.db"}


def rows(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def user_version(path: Path) -> int:
    return int(rows(path, "PRAGMA user_version")[0][0])


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data, ignore=shutil.ignore_patterns("secrets.json"))
    return data


def serve_exits(proc: ServerProcess) -> subprocess.CompletedProcess[str]:
    """`sunbid serve` run to its end (it is expected to refuse, not serve)."""
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=proc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_file_has_one_step_per_version() -> None:
    for kind, steps in STEPS.items():
        assert [s.version for s in steps] == list(range(1, LATEST[kind] + 1)), kind
    assert LATEST == {
        "events": versions.EVENTS,
        "push": versions.PUSH,
        "compliance": versions.COMPLIANCE,
        "respond": versions.RESPOND,
        "webhooks": versions.WEBHOOKS,
    }


def test_the_fixture_is_the_old_schema() -> None:
    for name in FILES.values():
        assert user_version(FIXTURE / name) == 0, name
    assert rows(FIXTURE / "sunbid.db", "SELECT COUNT(*) FROM events WHERE stage='registered'") == [
        (0,)
    ]


def test_migrate_keeps_everything_and_the_server_serves_it(old_data: Path) -> None:
    old_events = rows(old_data / "sunbid.db", "SELECT seq, doc FROM events ORDER BY seq")
    projects = {
        r[0]: r[1] for r in rows(old_data / "sunbid.db", "SELECT id, created_at FROM projects")
    }
    old_warnings = {r[0] for r in rows(old_data / "compliance.db", "SELECT id FROM warnings")}
    assert old_events and projects and old_warnings
    tokens = SECRETS["tokens"]
    subscriber = SECRETS["subscriber"]
    with PushService.in_thread(port=int(subscriber["endpoint"].split(":")[2].split("/")[0])) as svc:
        svc.adopt(
            subscriber["endpoint"],
            _private_key(subscriber["private_key_pem"]),
            base64.urlsafe_b64decode(subscriber["auth"]),
            subscriber["application_server_key"],
        )
        proc = ServerProcess(old_data, SUNBID_PUSH_ALLOWED_HOSTS=svc.origin)

        # Before: the server refuses, naming the command; nothing was changed.
        refused = serve_exits(proc)
        assert refused.returncode == 2, refused.stderr
        assert "older Sunbid" in refused.stderr and "`sunbid migrate`" in refused.stderr
        assert user_version(old_data / "sunbid.db") == 0

        migrated = proc.cli("migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert f"({len(projects)} events appended)" in migrated.stdout
        for kind, name in FILES.items():
            assert user_version(old_data / name) == LATEST[kind], name
        head = len(old_events) + len(projects)
        again = proc.cli("migrate")  # idempotent: the second run changes nothing
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
        assert rows(old_data / "sunbid.db", "SELECT MAX(seq) FROM events") == [(head,)]

        verified = proc.cli("verify")
        assert verified.returncode == 0, verified.stdout
        assert f"ok: {head} events" in verified.stdout

        proc.start()
        try:
            served = httpx.get(proc.url + "/api/events", params={"since": 0, "limit": 1000}).json()
            events = served["items"]
            assert served["head"] == head and len(events) == head
            for (seq, doc), event in zip(old_events, events, strict=False):
                kept = orjson.loads(doc)
                assert (event["seq"], event["hash"]) == (seq, kept["hash"])
                assert event == kept
            registered = {e["project"]: e for e in events[len(old_events) :]}
            assert set(registered) == set(projects)
            assert all(e["stage"] == "registered" for e in registered.values())
            old = registered["OLD-1"]
            assert old["occurred_at"] == projects["OLD-1"]
            assert old["data"] == {
                "title": "迁移前的项目",
                "budget": 1250000.5,
                "currency": "CNY",
                "region": "330782",
                "must_tender": None,
            }

            # Tokens still authenticate; the revoked one still does not.
            publisher = {"Authorization": f"Bearer {tokens['publisher']}"}
            revoked = {"Authorization": f"Bearer {tokens['revoked']}"}
            assert (
                httpx.post(
                    proc.url + "/api/projects/OLD-1/events",
                    json={"stage": "notice", "title": "x"},
                    headers=revoked,
                ).status_code
                == 401
            )
            # An idempotency key used before the migration still answers its event.
            repeat = httpx.post(
                proc.url + "/api/projects/OLD-1/events",
                json={"stage": "notice", "title": "notice 0"},
                headers={**publisher, "Idempotency-Key": "k-notice"},
            )
            assert repeat.status_code == 200, repeat.text
            assert repeat.json()["seq"] < len(old_events)
            fresh = httpx.post(
                proc.url + "/api/projects/OLD-1/events",
                json={"stage": "clarification", "title": "迁移后的澄清"},
                headers=publisher,
            )
            assert fresh.status_code == 201, fresh.text
            seq = fresh.json()["seq"]
            assert seq == head + 1

            # The old subscription still exists, and the publication reaches it.
            svc.wait_for_sync(lambda: any(_seq_of(m) == seq for m in svc.messages), 20)

            supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}
            listed = httpx.get(
                proc.url + "/api/supervision/warnings",
                params={"limit": 100},
                headers=supervisor,
            ).json()["items"]
            # Made with older rules: the first start rebuilt the warnings from the
            # log under today's, replacing them (those today's rules still raise
            # are there again, under the same ids).
            assert "gov_procurement.award-contract/YW-ZFCG-2026-0056/13/breach" in old_warnings
            assert old_warnings & {w["id"] for w in listed} == {
                "gov_procurement.award-contract/YW-ZFCG-2026-0056/13/approaching",
                "gov_procurement.award-contract/YW-ZFCG-2026-0056/13/breach",
            }
        finally:
            proc.stop()
        verified = proc.cli("verify")
        assert verified.returncode == 0, verified.stdout


def test_a_new_data_directory_is_made_at_the_current_version(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data").start()
    try:
        proc.token("admin-new")
    finally:
        proc.stop()
    for kind, name in FILES.items():
        assert user_version(proc.data_dir / name) == LATEST[kind], name
    assert "nothing to do" in proc.cli("migrate").stdout


def test_a_file_from_a_newer_version_is_refused(old_data: Path) -> None:
    proc = ServerProcess(old_data)
    assert proc.cli("migrate").returncode == 0
    with sqlite3.connect(old_data / "push.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    refused = serve_exits(proc)
    assert refused.returncode == 2
    assert "newer Sunbid" in refused.stderr and "push.db is at schema version 99" in refused.stderr
    again = proc.cli("migrate")
    assert again.returncode == 1 and "push.db is at schema version 99" in again.stderr


def test_migrate_refuses_while_a_server_runs(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data").start()
    try:
        busy = proc.cli("migrate")
        assert busy.returncode == 1 and "stop the server first" in busy.stderr
    finally:
        proc.stop()


def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _seq_of(message: Any) -> int | None:
    event = message.payload.get("event") if isinstance(message.payload, dict) else None
    return event.get("seq") if isinstance(event, dict) else None


def test_a_migration_interrupted_before_its_version_is_run_again(old_data: Path) -> None:
    proc = ServerProcess(old_data)
    assert proc.cli("migrate").returncode == 0
    head = rows(old_data / "sunbid.db", "SELECT MAX(seq) FROM events")
    # As if it stopped after appending, before the version was written.
    with sqlite3.connect(old_data / "sunbid.db") as conn:
        conn.execute("PRAGMA user_version = 0")
    again = proc.cli("migrate")
    assert again.returncode == 0, again.stderr
    assert "(0 events appended)" in again.stdout
    assert rows(old_data / "sunbid.db", "SELECT MAX(seq) FROM events") == head
    assert user_version(old_data / "sunbid.db") == 1


def test_refusal_names_the_command_or_the_newer_version() -> None:
    def version(kind: str, found: int | None) -> FileVersion:
        return FileVersion(kind, Path(FILES[kind]), found, LATEST[kind])

    current = [version(kind, LATEST[kind]) for kind in FILES]
    assert refusal(current, Path("d")) is None
    assert refusal([version("events", None), version("push", None)], Path("d")) is None  # new
    behind = refusal([version("events", 0), version("push", LATEST["push"])], Path("d"))
    assert behind is not None and "`sunbid migrate`" in behind and "sunbid.db" in behind
    assert "push.db" not in behind
    # A file from a newer version is refused even beside an older one: no
    # migration would help.
    mixed = refusal([version("events", 0), version("push", 99)], Path("d"))
    assert mixed is not None and "newer Sunbid" in mixed and "migrate" not in mixed
