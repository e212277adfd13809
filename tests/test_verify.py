"""`sunbid verify` checks the chain and every derived record against the log,
naming the first that differs; `sunbid rebuild` puts the records right.

The data is the pre-issue fixture, migrated (tests/test_migrate.py): a real
log with a push subscription and delivery rows. Edits are made the way an
operator (or an attacker) would: with SQL on the files."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess, Staff

FIXTURE = ROOT / "tests" / "fixtures" / "pre-issue9"


@pytest.fixture
def data(tmp_path: Path) -> ServerProcess:
    target = tmp_path / "data"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("secrets.json"))
    proc = ServerProcess(target)
    assert proc.cli("migrate").returncode == 0
    # Its warnings were recorded under older rules: brought to today's, as the
    # next start of a server would (the rebuild verifies what it wrote).
    assert proc.cli("rebuild").returncode == 0
    return proc


def test_a_record_of_a_server_killed_before_its_first_snapshot_is_checked(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    staff = Staff(server, server.token("verify-admin"))
    staff.project("KILLED-1")
    staff.publish("KILLED-1", "notice")
    staff.client.close()
    record = server.data_dir / "compliance.db"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the warnings' progress, stored within a second or so
        if record.exists() and stored_cursor(record) >= 2:
            break
        time.sleep(0.1)
    server.stop(signal.SIGKILL)  # no snapshot at shutdown: 2 events are far from the first
    code, out = verify(server)
    assert code == 0 and "ok: compliance is what the log yields" in out, out


def stored_cursor(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT cursor FROM progress").fetchall()
    return int(found[0][0]) if found else 0


def test_a_record_made_with_other_rules_is_left_to_the_next_start(tmp_path: Path) -> None:
    target = tmp_path / "data"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("secrets.json"))
    proc = ServerProcess(target)
    assert proc.cli("migrate").returncode == 0
    code, out = verify(proc)
    assert code == 0, out
    assert "ok: compliance was made with other rules" in out, out
    proc.start()  # rebuilds it from the log under today's rules
    proc.stop()
    code, out = verify(proc)
    assert code == 0 and "ok: compliance is what the log yields" in out, out


def sql(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)


def verify(proc: ServerProcess) -> tuple[int, str]:
    done = proc.cli("verify")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def test_intact_data_verifies(data: ServerProcess) -> None:
    code, out = verify(data)
    assert code == 0, out
    assert "hash chain intact" in out and "ok: push is what the log yields" in out


def test_a_push_cursor_ahead_of_the_log_is_named(data: ServerProcess) -> None:
    sql(data.data_dir / "push.db", "UPDATE cursor SET seq = 128")
    code, out = verify(data)
    assert code == 1
    assert "BAD in push: push.db cursor: at seq 128, ahead of the log's head 123" in out


def test_a_delivery_row_the_log_does_not_yield_is_named(data: ServerProcess) -> None:
    # Seq 5 is an event of a demo project; the subscription follows project:OLD-1 only.
    sql(data.data_dir / "push.db", "UPDATE deliveries SET seq = 5 WHERE seq = 101")
    code, out = verify(data)
    assert code == 1
    assert "BAD in push: push.db delivery (seq 5, subscription 1):" in out
    assert "the subscription does not follow event 5" in out


def test_a_delivery_row_past_the_cursor_is_named(data: ServerProcess) -> None:
    sql(data.data_dir / "push.db", "UPDATE deliveries SET seq = 500 WHERE seq = 102")
    code, out = verify(data)
    assert code == 1
    assert "push.db delivery (seq 500, subscription 1): event 500 is not one the cursor" in out


def test_rebuild_puts_the_push_record_right(data: ServerProcess) -> None:
    sql(
        data.data_dir / "push.db",
        "UPDATE cursor SET seq = 999",
        "UPDATE deliveries SET seq = 5 WHERE seq = 101",
    )
    assert verify(data)[0] == 1
    rebuilt = data.cli("rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt push from the log (head 123)" in rebuilt.stdout
    code, out = verify(data)
    assert code == 0, out
    with sqlite3.connect(data.data_dir / "push.db") as conn:
        assert conn.execute("SELECT seq FROM cursor").fetchall() == [(123,)]
        # The row the log yields stays, with its outcome; the forged one is gone.
        assert conn.execute("SELECT seq, state FROM deliveries").fetchall() == [(102, 1)]


def test_rebuild_refuses_while_a_server_runs(data: ServerProcess) -> None:
    data.start()
    try:
        busy = data.cli("rebuild")
        assert busy.returncode == 1 and "stop the server first" in busy.stderr
    finally:
        data.stop()


def test_an_event_stored_as_text_is_a_bad_seq_not_a_crash(data: ServerProcess) -> None:
    sql(
        data.data_dir / "sunbid.db",
        "DROP TRIGGER events_no_update",
        "UPDATE events SET doc = CAST(doc AS TEXT) WHERE seq = 7",
    )
    code, out = verify(data)
    assert code == 1
    assert "BAD at seq 7: the stored event is str, not the bytes written" in out
    assert "(6 events before it are intact)" in out


def test_rebuild_refuses_a_directory_not_yet_migrated(tmp_path: Path) -> None:
    target = tmp_path / "data"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("secrets.json"))
    proc = ServerProcess(target)
    before = (target / "sunbid.db").read_bytes()
    refused = proc.cli("rebuild")
    assert refused.returncode == 2
    assert "nothing was rebuilt" in refused.stderr and "`sunbid migrate`" in refused.stderr
    assert (target / "sunbid.db").read_bytes() == before
    # verify still checks the chain of such a directory, and says what is due.
    checked = proc.cli("verify")
    assert checked.returncode == 0, checked.stdout
    assert "hash chain intact" in checked.stdout and "`sunbid migrate`" in checked.stderr


def test_an_edited_project_row_is_named_and_rebuilt(data: ServerProcess) -> None:
    sql(data.data_dir / "sunbid.db", "UPDATE projects SET title = '改过的名称' WHERE id = 'OLD-1'")
    code, out = verify(data)
    assert code == 1
    assert "BAD in projects: projects: OLD-1 title '改过的名称' != " in out, out
    assert data.cli("rebuild").returncode == 0
    code, out = verify(data)
    assert code == 0, out


def test_an_edited_warning_is_named_and_rebuilt(data: ServerProcess) -> None:
    """A resolved breach made open again: the log says it was resolved."""
    path = data.data_dir / "compliance.db"
    with sqlite3.connect(path) as conn:
        [(warning_id,)] = conn.execute(
            "SELECT id FROM warnings WHERE level = 'breach' AND resolved_at IS NOT NULL LIMIT 1"
        ).fetchall()
    sql(path, f"UPDATE warnings SET resolved_at = NULL WHERE id = '{warning_id}'")
    code, out = verify(data)
    assert code == 1
    assert "BAD in compliance: compliance: warning" in out and warning_id in out, out
    assert data.cli("rebuild").returncode == 0
    code, out = verify(data)
    assert code == 0, out
