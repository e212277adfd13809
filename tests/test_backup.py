"""`sunbid backup` while publishers write, `sunbid restore` into a fresh data
directory, and the refusals that keep a backup or a data directory whole."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.backup.files import MANIFEST, sha256_of
from server.backup.make import copy_database
from server.datalock import LOCK_FILE
from tests.conftest import ServerProcess, Staff, with_facts
from tests.push_service import PushService
from tests.test_push_e2e import Push, push_env, seqs, wait_until

PUBLISHERS = 4
PADDING = "x" * 12_000  # ~12 KB events: a log of several MB, copied in several steps
PREFILL = 400  # events published before the backup starts


@pytest.fixture
def push_service() -> Iterator[PushService]:
    with PushService.in_thread() as service:
        yield service


def events_of(server: ServerProcess) -> dict[int, str]:
    """seq → hash of every event the server serves."""
    found: dict[int, str] = {}
    since = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while True:
            response = client.get("/api/events", params={"since": since, "limit": 1000})
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            if not items:
                return found
            for event in items:
                found[event["seq"]] = event["hash"]
            since = items[-1]["seq"]


class Publishers:
    """Threads that publish as fast as the server acknowledges, each noting
    when every 201 arrived."""

    def __init__(self, server: ServerProcess, token: str, projects: list[str]) -> None:
        self.acked: list[tuple[float, int, str]] = []  # (monotonic time of the 201, seq, hash)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish, args=(server, token, p)) for p in projects
        ]

    def __enter__(self) -> Publishers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _publish(self, server: ServerProcess, token: str, project: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = with_facts("notice", title=f"{project} #{n}", body=PADDING)
                response = client.post(f"/api/projects/{project}/events", json=body)
                if response.status_code != 201:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    return
                event = response.json()
                self.acked.append((time.monotonic(), event["seq"], event["hash"]))

    def acked_before(self, moment: float) -> dict[int, str]:
        return {seq: h for at, seq, h in list(self.acked) if at < moment}


def manifest_of(backup: Path) -> dict[str, Any]:
    return dict(json.loads((backup / MANIFEST).read_text("utf-8")))


# --- backing up while publishers write, restoring into a fresh directory ----------------------


def test_a_backup_taken_while_publishing_restores_every_acknowledged_event(
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    push_service: PushService,
) -> None:
    env = push_env(push_service)
    server = start_server(**env)
    push = Push(server, server.token("admin"))
    projects = [f"BK-{i}" for i in range(PUBLISHERS)]
    for project in projects:
        push.staff.project(project)
    endpoint = push.follow(push_service, ["project:BK-0"])
    target = tmp_path / "backup"

    with Publishers(server, server.token("publisher"), projects) as publishers:
        wait_until(lambda: len(publishers.acked) >= PREFILL, "the log to fill", timeout=60)
        started = time.monotonic()
        result = server.cli("backup", str(target))
        finished = time.monotonic()
        wait_until(
            lambda: any(at > finished for at, _, _ in list(publishers.acked)),
            "a publication after the backup",
        )
    assert not publishers.errors, publishers.errors[:3]
    assert result.returncode == 0, result.stdout + result.stderr
    during = [seq for at, seq, _ in publishers.acked if started < at < finished]
    assert during, "nothing was published while the backup ran"

    manifest = manifest_of(target)
    head = manifest["head"]["seq"]
    before = publishers.acked_before(started)
    all_acked = {seq: h for _, seq, h in publishers.acked}
    assert max(before) <= head <= max(all_acked)
    assert f"head {head}" in result.stdout and "files" in result.stdout, result.stdout
    names = {f["name"]: f["kind"] for f in manifest["files"]}
    assert names == {
        "sunbid.db": "log",
        "push.db": "database",
        "compliance.db": "database",
        "respond.db": "database",
        "webhooks.db": "database",
        "vapid_private.pem": "file",
        "contacts.key": "file",
    }
    assert not list(tmp_path.glob(".backup.partial-*")), "a temporary folder was left"
    key_before = push.key
    push.close()
    server.stop()

    restored = ServerProcess(tmp_path / "restored", **env)
    result = restored.cli("restore", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"head {head}" in result.stdout, result.stdout
    verified = restored.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"head {head}, hash chain intact" in verified.stdout, verified.stdout

    restored.start()
    try:
        served = events_of(restored)
        assert max(served) == head
        for seq, digest in before.items():
            assert served.get(seq) == digest, f"acknowledged event {seq} is missing or changed"
        for seq, digest in served.items():
            if seq in all_acked:
                assert all_acked[seq] == digest, f"event {seq} differs from its 201"

        # It keeps publishing from head + 1, and the restored subscription
        # gets it, signed with the restored VAPID key.
        again = Push(restored, restored.token("admin-after-restore"))
        assert again.key == key_before
        event = again.publish("BK-0")
        assert event["seq"] == head + 1
        wait_until(
            lambda: head + 1 in seqs(push_service, endpoint),
            "the restored subscription to receive the new event",
        )
        again.close()
    finally:
        restored.stop()
    assert restored.cli("verify").returncode == 0


def test_a_database_copy_finishes_while_another_connection_keeps_committing(tmp_path: Path) -> None:
    """A stepped copy outside a held snapshot starts over at every commit made
    elsewhere, and under steady writing never ends; this one must end, and
    hold the database as of one commit."""
    source = tmp_path / "busy.db"
    setup = sqlite3.connect(source, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, total INTEGER NOT NULL, pad BLOB)")
    setup.execute("CREATE TABLE sums (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER)")
    setup.execute("INSERT INTO sums VALUES (1, 0)")
    for _ in range(3000):  # ~3,000 pages: ~200 steps of 16, while the writer commits
        setup.execute("INSERT INTO t (total, pad) VALUES (1, randomblob(4000))")
    setup.execute("UPDATE sums SET total = 3000")
    setup.close()

    stop = threading.Event()
    commits = 0

    def write() -> None:  # each commit adds a row and moves the sum with it
        nonlocal commits
        writer = sqlite3.connect(source, isolation_level=None, timeout=10)
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO t (total, pad) VALUES (1, randomblob(4000))")
            writer.execute("UPDATE sums SET total = total + 1")
            writer.execute("COMMIT")
            commits += 1
            time.sleep(0.001)
        writer.close()

    writer = threading.Thread(target=write)
    writer.start()
    copied = threading.Thread(
        target=copy_database,
        args=(source, tmp_path / "copy.db"),
        kwargs={"pages_per_step": 16},
        daemon=True,
    )
    try:
        wait_until(lambda: commits > 20, "the writer to get going")
        before = commits
        copied.start()
        copied.join(20)
        during = commits - before
        finished = not copied.is_alive()
    finally:
        stop.set()
        writer.join(10)
        copied.join(10)  # without the writer it ends
    assert finished, "the copy never finished while the writer committed"
    assert during > 0, "nothing was committed while the copy ran"
    copy = sqlite3.connect(tmp_path / "copy.db")
    rows, total = copy.execute("SELECT count(*), (SELECT total FROM sums) FROM t").fetchone()
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # no -wal beside it
    copy.close()
    assert rows == total and rows > 3000, (rows, total)


# --- refusals ---------------------------------------------------------------------------------


@pytest.fixture
def backup_of_a_server(tmp_path: Path, server: ServerProcess, staff: Staff) -> Path:
    """A backup of a small log of 5 events (the server keeps running)."""
    staff.project("RF-1")  # seq 1: its registration
    for _ in range(4):
        staff.publish("RF-1")
    target = tmp_path / "backup"
    result = server.cli("backup", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def test_restore_is_refused_while_a_server_runs_on_the_data_directory(
    server: ServerProcess, backup_of_a_server: Path
) -> None:
    result = server.cli("restore", str(backup_of_a_server))
    assert result.returncode == 1, result.stdout
    assert "server stopped" in result.stderr and "sunbid serve" in result.stderr, result.stderr
    assert "nothing was restored" in result.stderr
    assert not list(server.data_dir.glob("replaced-*"))
    assert not list(server.data_dir.glob(".restore-*"))
    assert server.head() == 5  # it still serves what it served
    server.stop()
    assert "head 5, hash chain intact" in server.cli("verify").stdout


def test_a_second_server_on_the_same_data_directory_is_refused(server: ServerProcess) -> None:
    second = ServerProcess(server.data_dir)
    with pytest.raises(RuntimeError, match="server exited") as refused:
        second.start()
    assert "in use by sunbid serve" in str(refused.value)
    assert str(server.data_dir / LOCK_FILE) in str(refused.value)
    assert server.head() == 0  # the first one is unaffected


def test_restore_puts_the_replaced_files_aside_never_deleting_them(
    tmp_path: Path, server: ServerProcess, backup_of_a_server: Path
) -> None:
    server.stop()
    old_log = sha256_of(server.data_dir / "sunbid.db")
    (server.data_dir / "push.db-wal").write_bytes(b"a stale write-ahead log")
    result = server.cli("restore", str(backup_of_a_server))
    assert result.returncode == 0, result.stderr
    folders = list(server.data_dir.glob("replaced-*"))
    assert len(folders) == 1 and str(folders[0]) in result.stdout, result.stdout
    assert sha256_of(folders[0] / "sunbid.db") == old_log
    assert (folders[0] / "push.db-wal").read_bytes() == b"a stale write-ahead log"
    assert (folders[0] / "vapid_private.pem").exists()
    assert not list(server.data_dir.glob("*-wal")) and not list(server.data_dir.glob("*-shm"))
    assert server.cli("verify").returncode == 0


def _flip_a_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_manifest(backup: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = manifest_of(backup)
    change(manifest)
    (backup / MANIFEST).write_text(json.dumps(manifest), "utf-8")


def _edit_an_event_and_fix_the_checksum(backup: Path) -> None:
    """Alter an event inside the log copy, then make the manifest agree: only
    the hash chain can tell."""
    db = sqlite3.connect(backup / "sunbid.db")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET doc = CAST(replace(doc, '公告', '公吿') AS BLOB) WHERE seq = 3")
    db.commit()
    db.close()

    def fix(manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            if entry["name"] == "sunbid.db":
                entry["bytes"] = (backup / "sunbid.db").stat().st_size
                entry["sha256"] = sha256_of(backup / "sunbid.db")

    _rewrite_manifest(backup, fix)


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "a byte of the log": (lambda b: _flip_a_byte(b / "sunbid.db", 5000), "sunbid.db differs"),
    "a byte of push.db": (lambda b: _flip_a_byte(b / "push.db", 3000), "push.db differs"),
    "a byte of the key": (
        lambda b: _flip_a_byte(b / "vapid_private.pem", 40),
        "vapid_private.pem differs",
    ),
    "a byte of the manifest": (
        lambda b: (b / MANIFEST).write_text(
            (b / MANIFEST).read_text("utf-8").replace('"seq": 5', '"seq": 4'), "utf-8"
        ),
        "manifest names seq 4",
    ),
    "a missing file": (lambda b: (b / "compliance.db").unlink(), "compliance.db is missing"),
    "no manifest": (lambda b: (b / MANIFEST).unlink(), "not a Sunbid backup"),
    "an edited event": (_edit_an_event_and_fix_the_checksum, "BAD at seq 3"),
    "a path in the manifest": (
        lambda b: _rewrite_manifest(b, lambda m: m["files"][0].update(name="../vapid_private.pem")),
        "not a plain file name",
    ),
}


@pytest.mark.parametrize("how", TAMPERING)
def test_restore_refuses_a_damaged_backup_and_changes_nothing(
    tmp_path: Path, backup_of_a_server: Path, how: str
) -> None:
    tamper, named = TAMPERING[how]
    tamper(backup_of_a_server)
    fresh = ServerProcess(tmp_path / "fresh")
    fresh.data_dir.mkdir()
    (fresh.data_dir / "sunbid.db").write_bytes(b"whatever was here before")
    result = fresh.cli("restore", str(backup_of_a_server))
    assert result.returncode == 1, result.stdout
    assert named in result.stderr, result.stderr
    assert "nothing was restored" in result.stderr, result.stderr
    left = sorted(p.name for p in fresh.data_dir.iterdir())
    assert left == sorted([LOCK_FILE, "sunbid.db"]), left
    assert (fresh.data_dir / "sunbid.db").read_bytes() == b"whatever was here before"


def test_backup_refuses_a_non_empty_target(server: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = server.cli("backup", str(target))
    assert result.returncode == 2
    assert "not an empty directory" in result.stderr, result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert server.cli("backup", str(empty)).returncode == 0
    assert (empty / MANIFEST).exists()


def test_a_failed_backup_leaves_nothing_that_looks_like_one(
    server: ServerProcess, staff: Staff, tmp_path: Path
) -> None:
    staff.project("FB-1")
    for _ in range(4):
        staff.publish("FB-1")
    server.stop()
    db = sqlite3.connect(server.data_dir / "sunbid.db")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET doc = CAST(replace(doc, '公告', '公吿') AS BLOB) WHERE seq = 2")
    db.commit()
    db.close()
    result = server.cli("backup", str(tmp_path / "backup"))
    assert result.returncode == 1
    assert "BAD at seq 2" in result.stderr and "backup failed" in result.stderr, result.stderr
    assert not (tmp_path / "backup").exists()
    assert not list(tmp_path.glob(".backup.partial-*"))


def test_with_postgresql_only_the_data_directory_is_copied(
    server: ServerProcess, tmp_path: Path
) -> None:
    server.stop()
    (server.data_dir / "sunbid.db").unlink()  # with PostgreSQL there is no SQLite log
    postgres = ServerProcess(server.data_dir, SUNBID_DATABASE_URL="postgresql://db/sunbid")
    result = postgres.cli("backup", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL" in result.stderr and "pg_dump" in result.stderr, result.stderr
    assert "Backup and restore" in result.stderr
    manifest = manifest_of(tmp_path / "backup")
    assert manifest["head"] is None
    assert {f["name"] for f in manifest["files"]} == {
        "push.db",
        "compliance.db",
        "respond.db",
        "webhooks.db",
        "contacts.key",
        "vapid_private.pem",
    }
    # A backup without the log is not restored beside a SQLite log.
    refused = server.cli("restore", str(tmp_path / "backup"))
    assert refused.returncode == 1 and "no event log" in refused.stderr, refused.stderr
    shutil.rmtree(tmp_path / "backup")
