"""Readiness (`/readyz`) and JSON logs (`SUNBID_LOG_FORMAT=json`), on real server processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.core.logs import JsonFormatter
from server.settings import Settings, SettingsError
from tests.conftest import ServerProcess, Staff
from tests.push_service import PushService
from tests.test_metrics import BIG_BODY, stalled_websocket
from tests.test_push_e2e import alive, start_push_server, stop, wait_until, worker_pid


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


def readyz(server: ServerProcess) -> httpx.Response:
    return httpx.get(server.url + "/readyz", timeout=5)


# --- readiness --------------------------------------------------------------------------


def test_a_started_server_is_ready(server: ServerProcess) -> None:
    response = readyz(server)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "head": 0}


def test_ready_but_degraded_while_the_push_worker_is_down_and_whole_once_restarted(
    server: ServerProcess,
) -> None:
    """A dead push worker stops no stream and no API call: the process stays in
    rotation (one server taken out would serve no one) and says what is wrong."""
    first = worker_pid(server)
    os.kill(first, signal.SIGKILL)
    answers: list[httpx.Response] = []

    def degraded() -> bool:
        answers.append(readyz(server))
        return "degraded" in answers[-1].json()

    wait_until(degraded, "/readyz to report the worker down", 5)
    assert answers[-1].status_code == 200
    assert answers[-1].json() == {"status": "ready", "head": 0, "degraded": ["push_worker_down"]}
    assert httpx.get(server.url + "/healthz").status_code == 200

    wait_until(lambda: "degraded" not in readyz(server).json(), "the worker's restart", 10)
    assert not alive(first)


def test_not_ready_once_a_shutdown_has_begun(server: ServerProcess) -> None:
    """Streams get up to two seconds to hear "going away" at a shutdown; meanwhile the
    server still accepts connections, and /readyz must send the load balancer elsewhere."""
    staff = Staff(server, server.token("ready-admin"))
    try:
        staff.project("RZ-1")
        # A client that never reads, with frames queued for it: its close takes the
        # whole shutdown allowance.
        stalled = stalled_websocket(server, "topics=project:RZ-1")
        for _ in range(100):
            staff.publish("RZ-1", body=BIG_BODY)
        assert readyz(server).status_code == 200
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        seen: list[Any] = []
        deadline = time.monotonic() + 10
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                response = readyz(server)
            except httpx.HTTPError:
                break  # no longer listening
            seen.append((response.status_code, response.json()))
            time.sleep(0.02)
        stalled.close()
        refused = [body for status, body in seen if status == 503]
        assert refused, f"never answered 503 during the shutdown: {seen[:3]}"
        assert "shutting_down" in refused[0]["error"]["details"]["reasons"]
        assert all(status == 503 for status, _ in seen[seen.index((503, refused[0])) :])
    finally:
        staff.client.close()


# --- JSON logs --------------------------------------------------------------------------


def test_json_logs_every_line_of_the_server_and_its_push_worker_is_an_object(
    service: PushService, tmp_path: Path
) -> None:
    push = start_push_server(tmp_path / "data", service, SUNBID_LOG_FORMAT="json")
    try:
        push.staff.project("JL-1")
        endpoint = push.follow(service, ["project:JL-1"])
        seq = push.publish("JL-1")["seq"]
        wait_until(lambda: len(service.received(endpoint)) == 1, "the push")
        # The worker logs an attempt once it has the answer: let it, before killing it.
        wait_until(lambda: f"push seq={seq} " in push.server.log.read_text("utf-8"), "its log line")
        os.kill(worker_pid(push.server), signal.SIGKILL)  # an error line, logged by the server
        wait_until(lambda: "degraded" not in readyz(push.server).json(), "the worker's restart")
        # A request the server refuses logs nothing, and a bad one no traceback.
        assert httpx.get(push.server.url + "/api/events?limit=x").status_code == 422
    finally:
        stop(push)
    lines = push.server.log.read_text("utf-8").splitlines()
    assert lines
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert time.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S")
        records.append(record)
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "sunbid", "sunbid.push"} <= loggers, loggers
    messages = [r["message"] for r in records]
    # The worker process logs its attempts in JSON too.
    assert any(m.startswith(f"push seq={seq} ") for m in messages), messages
    assert any(
        r["level"] == "ERROR" and r["message"].startswith("push worker exited") for r in records
    )
    assert any(m.startswith("Sunbid: open http://") for m in messages)
    # The refused request left no line at all, and nothing logged a traceback.
    assert not [m for m in messages if "limit=x" in m], messages
    assert not [r for r in records if "exception" in r], records


def test_a_json_line_carries_the_exception_with_its_traceback() -> None:
    try:
        raise ValueError("the disk said no")
    except ValueError:
        record = logging.LogRecord(
            "sunbid.test", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here" and parsed["level"] == "ERROR"
    assert parsed["logger"] == "sunbid.test"
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: the disk said no" in parsed["exception"]
    assert "exception" not in json.loads(
        JsonFormatter().format(logging.LogRecord("x", logging.INFO, "", 1, "ok", (), None))
    )


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SUNBID_LOG_FORMAT", "xml"),
        ("SUNBID_LOG_FORMAT", "jsonl"),
        ("SUNBID_METRICS_TOKEN", "short"),
        ("SUNBID_METRICS_TOKEN", "a token with spaces in it"),
        ("SUNBID_METRICS_TOKEN", "non-ascii-tökén-0123456789"),
    ],
)
def test_bad_operations_settings_are_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_operations_settings_defaults_and_values() -> None:
    default = Settings.from_env({})
    assert (default.log_format, default.metrics_token) == ("text", None)
    given = Settings.from_env({"SUNBID_LOG_FORMAT": "JSON", "SUNBID_METRICS_TOKEN": "t" * 16})
    assert (given.log_format, given.metrics_token) == ("json", "t" * 16)


def test_serve_with_a_bad_log_format_stops_with_a_message(
    start_server: Callable[..., ServerProcess],
) -> None:
    with pytest.raises(RuntimeError, match="SUNBID_LOG_FORMAT must be text or json"):
        start_server(SUNBID_LOG_FORMAT="yaml")
