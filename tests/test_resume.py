"""Resuming a stream: every matching event exactly once, in seq order.

Across disconnects, across a replay that races live publishing, across a
SIGKILL of the server, on both transports (WebSocket `/ws` and SSE
`/api/stream`), with and without a `stages` filter. Expectations are always
computed from the log (`GET /api/events`), never from what the stream said.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import CLOSED, ServerProcess, Staff, close_clients, with_facts

TIMEOUT = 10.0  # on every single receive: a hang fails fast
BIG_BODY = "开标记录及评标情况公示。" * 1500  # ~54 KB of UTF-8: replays take a while


# --- helpers ------------------------------------------------------------------

_opened: list[Any] = []  # clients a test opened: closed after it, pass or fail


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_clients(_opened)


def closed(stage: str, fields: dict[str, Any]) -> dict[str, Any]:
    if stage != "notice":
        return fields
    return {**fields, "data": {**CLOSED, **fields.get("data", {})}}


class Publisher:
    """An async staff client (the fixture's `Staff` is synchronous)."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        _opened.append(self.client)

    async def project(
        self,
        project_id: str,
        category: str = "construction",
        agency: str = "YW-GGZY",
        region: str | None = "330782",
    ) -> dict[str, Any]:
        """Register a project; return its `registered` event (an event like any other)."""
        response = await self.client.post(
            "/api/projects",
            json={
                "id": project_id,
                "title": f"项目 {project_id}",
                "category": category,
                "agency": agency,
                "region": region,
            },
        )
        assert response.status_code == 201, response.text
        timeline = (await self.client.get(f"/api/projects/{project_id}")).json()["timeline"]
        assert timeline[0]["stage"] == "registered"
        return dict(timeline[0])

    async def publish(
        self, project_id: str, stage: str = "notice", **fields: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/projects/{project_id}/events",
            # A notice whose bid deadline has passed: openings and awards may follow it.
            json=with_facts(stage, **{"title": f"{stage} {project_id}", **closed(stage, fields)}),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def many(
        self, items: list[tuple[str, str]], concurrency: int = 16, **fields: Any
    ) -> list[dict[str, Any]]:
        if concurrency == 1:
            return [await self.publish(p, s, **fields) for p, s in items]
        gate = asyncio.Semaphore(concurrency)

        async def one(project_id: str, stage: str) -> dict[str, Any]:
            async with gate:
                return await self.publish(project_id, stage, **fields)

        return list(await asyncio.gather(*(one(p, s) for p, s in items)))

    async def aclose(self) -> None:
        await self.client.aclose()


def read_log(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    """Every event matching `params` (topics, stages), in seq order, via /api/events."""
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while True:
            since = events[-1]["seq"] if events else 0
            page = client.get("/api/events", params={**params, "since": since, "limit": 1000})
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            events += items
            if len(items) < 1000:
                return events


async def ws_open(server: ServerProcess, **query: Any) -> ClientConnection:
    url = server.ws_url + ("?" + urlencode(query) if query else "")
    ws = await connect(url, proxy=None, open_timeout=TIMEOUT, max_size=2**22, compression=None)
    _opened.append(ws)
    return ws


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))


async def subscribed(ws: ClientConnection) -> int:
    message = await recv(ws)
    assert message["op"] == "subscribed", message
    return int(message["head"])


async def recv_events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    events = []
    while len(events) < count:
        message = await recv(ws)
        assert message["op"] == "event", message
        events.append(message["event"])
    return events


async def until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every event the server sends before it answers a ping sent now.

    The server handles a connection's messages in order and a ping only after a
    subscribe's replay is done, and an event whose 201 has been received is
    already queued for its subscribers: so after the pong nothing that was
    published before the ping may still arrive.
    """
    await ws.send(json.dumps({"op": "ping"}))
    events = []
    while True:
        message = await recv(ws)
        if message["op"] == "pong":
            return events
        assert message["op"] == "event", message
        events.append(message["event"])


class Lagging(Exception):
    """The server cut the stream off because the client was too slow."""


class Ended(Exception):
    """The stream ended without saying why."""


class WSClient:
    def __init__(
        self, server: ServerProcess, topics: list[str], stages: list[str] | None = None
    ) -> None:
        self.server, self.topics, self.stages = server, topics, stages
        self.ws: ClientConnection | None = None

    async def open(self, since: int | None) -> int:
        query: dict[str, Any] = {"topics": ",".join(self.topics)}
        if self.stages:
            query["stages"] = ",".join(self.stages)
        if since is not None:
            query["since"] = since
        self.ws = await ws_open(self.server, **query)
        return await subscribed(self.ws)

    async def next_event(self) -> dict[str, Any]:
        assert self.ws is not None
        try:
            message = await recv(self.ws)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 4008:
                assert exc.rcvd.reason == "lagging"
                raise Lagging() from None
            raise
        assert message["op"] == "event", message
        return dict(message["event"])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


class SSEClient:
    def __init__(
        self,
        server: ServerProcess,
        topics: list[str],
        stages: list[str] | None = None,
        use_header: bool = True,
    ) -> None:
        self.server, self.topics, self.stages = server, topics, stages
        self.use_header = use_header
        self.http = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)
        _opened.append(self.http)
        self.response: httpx.Response | None = None
        self.lines: AsyncIterator[str] | None = None

    async def open(self, since: int | None, url_since: int | None = None) -> int:
        params: dict[str, Any] = {"topics": ",".join(self.topics)}
        if self.stages:
            params["stages"] = ",".join(self.stages)
        headers = {}
        if since is not None and self.use_header:
            headers["Last-Event-ID"] = str(since)
        elif since is not None:
            params["since"] = since
        if url_since is not None:
            params["since"] = url_since
        request = self.http.build_request("GET", "/api/stream", params=params, headers=headers)
        self.response = await self.http.send(request, stream=True)
        _opened.append(self.response)
        assert self.response.status_code == 200, await self.response.aread()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.lines = self.response.aiter_lines()
        frame = await self.frame()
        assert frame.get("event") == "subscribed", frame
        return int(json.loads(frame["data"])["head"])

    async def frame(self) -> dict[str, str]:
        """The next SSE frame as its fields (comments skipped, data lines joined)."""
        assert self.lines is not None
        fields: dict[str, str] = {}
        while True:
            try:
                line = await asyncio.wait_for(anext(self.lines), TIMEOUT)
            except StopAsyncIteration:
                raise Ended(f"stream ended; pending frame {fields}") from None
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name in fields else value

    async def next_event(self) -> dict[str, Any]:
        frame = await self.frame()
        if frame.get("event") == "error":
            error = json.loads(frame["data"])
            if error["code"] == "lagging":
                raise Lagging()
            raise Ended(frame)
        event = dict(json.loads(frame["data"]))
        # The frame's own fields agree with the event it carries.
        assert frame["id"] == str(event["seq"]), frame
        assert frame["event"] == event["stage"], frame
        return event

    async def close(self) -> None:
        if self.response is not None:
            await self.response.aclose()
            self.response = None

    async def aclose(self) -> None:
        await self.close()
        await self.http.aclose()


Client = WSClient | SSEClient


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


# --- resume after a disconnect (WebSocket) -------------------------------------


@pytest.mark.parametrize("form", ["url", "op"])
async def test_ws_resume_gets_exactly_the_missed_events_then_live_ones(
    server: ServerProcess, admin: str, form: str
) -> None:
    pub = Publisher(server, admin)
    registered = await pub.project("RS-1")
    await pub.project("RS-OTHER", category="land", agency="YW-LAND")
    first = []
    for i in range(5):
        first.append(await pub.publish("RS-1", "notice", data={"n": i}))
        await pub.publish("RS-OTHER", "notice")

    async def open_with(since: int) -> ClientConnection:
        if form == "url":
            return await ws_open(server, topics="project:RS-1", since=since)
        ws = await ws_open(server)
        await ws.send(json.dumps({"op": "subscribe", "topics": ["project:RS-1"], "since": since}))
        return ws

    ws = await open_with(0)
    assert await subscribed(ws) == 12  # two registrations, ten notices
    got = await recv_events(ws, 4)
    assert got == [registered, *first[:3]]  # identical to what the publisher was given
    last = got[-1]["seq"]
    await ws.close()

    missed = first[3:]
    for i in range(7):
        await pub.publish("RS-OTHER", "clarification")
        missed.append(await pub.publish("RS-1", "clarification", data={"n": 5 + i}))

    ws = await open_with(last)
    head = await subscribed(ws)
    assert head == missed[-1]["seq"]
    assert await until_pong(ws) == missed  # exactly the missed ones, in order, once

    live = [await pub.publish("RS-1", "bid_opening"), await pub.publish("RS-1", "evaluation")]
    await pub.publish("RS-OTHER", "auction")
    assert await recv_events(ws, 2) == live
    assert await until_pong(ws) == []  # and nothing else
    await ws.close()
    await pub.aclose()


async def test_ws_subscribe_without_since_is_live_only(server: ServerProcess, admin: str) -> None:
    pub = Publisher(server, admin)
    await pub.project("RS-LIVE")
    await pub.many([("RS-LIVE", "notice")] * 4)
    ws = await ws_open(server)
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:RS-LIVE"]}))
    assert await subscribed(ws) == 5  # its registration and four notices
    later = await pub.publish("RS-LIVE", "clarification")
    assert await until_pong(ws) == [later]
    await ws.close()
    await pub.aclose()


# --- a replay racing live publishing -------------------------------------------


class BigLog:
    """A server whose log already holds many large events, shared by a module."""

    def __init__(self, server: ServerProcess, token: str, project: str) -> None:
        self.server, self.token, self.project = server, token, project


def _seed(server: ServerProcess, token: str) -> None:
    async def run() -> None:
        pub = Publisher(server, token)
        await pub.project("BIG-A")
        await pub.project("BIG-B", category="land", agency="YW-LAND", region="330783")
        # Big events first, so the first replay page is slow to send; more than a
        # page (1000) in all, so a replay reads the log again after live events
        # have started to arrive.
        await pub.many(
            [("BIG-A" if i % 3 else "BIG-B", "notice") for i in range(450)], body=BIG_BODY
        )
        await pub.many([("BIG-A" if i % 8 else "BIG-B", "clarification") for i in range(900)])
        await pub.aclose()
        _opened.remove(pub.client)

    asyncio.run(run())


@pytest.fixture(scope="module", params=["default", "pending128k"])
def big_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BigLog]:
    env = {"SUNBID_MAX_PENDING_BYTES": "131072"} if request.param == "pending128k" else {}
    server = ServerProcess(tmp_path_factory.mktemp("big") / "data", **env).start()
    try:
        token = server.token("admin-big")
        _seed(server, token)
        yield BigLog(server, token, "BIG-A")
    finally:
        server.stop(signal.SIGKILL)


class Race:
    """Keeps publishing (matching and non-matching events) until stopped."""

    def __init__(
        self, pub: Publisher, projects: list[str], workers: int = 1, pause: float = 0.0
    ) -> None:
        self.pub, self.projects, self.workers, self.pause = pub, projects, workers, pause
        self.acked: list[tuple[float, dict[str, Any]]] = []
        self.stop = asyncio.Event()
        self.task: asyncio.Future[Any] | None = None

    async def _run(self, worker: int) -> None:
        for i in itertools.count(worker, self.workers):
            if self.stop.is_set():
                return
            project = self.projects[i % len(self.projects)]
            stage = ("notice", "clarification")[i % 2]
            event = await self.pub.publish(project, stage, data={"i": i})
            self.acked.append((time.monotonic(), event))
            if self.pause:
                await asyncio.sleep(self.pause)

    async def start(self, warmup: int = 5) -> None:
        self.task = asyncio.gather(*(self._run(n) for n in range(self.workers)))
        while len(self.acked) < warmup:
            await asyncio.sleep(0.005)
            if self.task.done():
                await self.task

    async def finish(self) -> None:
        assert self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 30)

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for moment, _ in self.acked if start <= moment <= end)


async def next_resuming(client: Client, got: list[dict[str, Any]], counter: list[int]) -> dict:
    """The next event; if the server cut the client off as lagging, resume and go on."""
    while True:
        try:
            return await client.next_event()
        except Lagging:
            counter[0] += 1
            await client.close()
            await client.open(got[-1]["seq"] if got else 0)


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_events_published_during_a_replay_are_neither_lost_nor_doubled(
    big_log: BigLog, transport: str
) -> None:
    server = big_log.server
    pub = Publisher(server, big_log.token)
    # Live traffic on the followed project and on one that is not followed.
    race = Race(pub, [big_log.project, "BIG-B"])
    await race.start()
    topics = [f"project:{big_log.project}"]
    client: Client = WSClient(server, topics) if transport == "ws" else SSEClient(server, topics)
    started = time.monotonic()
    head = await client.open(0)
    old = [e["seq"] for e in read_log(server, topics=topics[0]) if e["seq"] <= head]
    got: list[dict[str, Any]] = []
    lagged = [0]
    replay_done = 0.0
    while len(got) < len(old) + 30:
        got.append(await next_resuming(client, got, lagged))
        if len(got) <= 300:
            await asyncio.sleep(0.001)  # a slowish reader: the replay takes longer
        if got[-1]["seq"] == old[-1]:
            replay_done = time.monotonic()
    await race.finish()
    sentinel = await pub.publish(big_log.project, "bid_opening", title="sentinel")
    while got[-1]["seq"] != sentinel["seq"]:
        got.append(await next_resuming(client, got, lagged))
    if isinstance(client, WSClient):
        assert client.ws is not None
        assert await until_pong(client.ws) == []
    else:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.next_event(), 0.3)

    expected = seqs(read_log(server, topics=topics[0]))
    received = seqs(got)
    assert received == expected, (
        f"lost {sorted(set(expected) - set(received))[:10]}, doubled or extra "
        f"{[s for s in received if received.count(s) > 1 or s not in expected][:10]}"
    )
    # The test means something only if publishing really raced the replay.
    assert replay_done and race.acked_between(started, replay_done) > 0
    assert got[-1] == sentinel
    if isinstance(client, WSClient):
        await client.close()
    else:
        await client.aclose()
    await pub.aclose()


async def test_subscribing_while_publishing_never_leaves_a_hole(
    server: ServerProcess, admin: str
) -> None:
    """Many subscribes with since=0 while events keep being committed: each one's
    replay hands over to live delivery at a different moment, and none may
    lose or repeat an event at the seam."""
    pub = Publisher(server, admin)
    await pub.project("SEAM-1")
    await pub.project("SEAM-2", category="land", agency="YW-LAND")
    await pub.many([("SEAM-1" if i % 4 else "SEAM-2", "notice") for i in range(300)])
    race = Race(pub, ["SEAM-1", "SEAM-2", "SEAM-1"], workers=3, pause=0.004)
    await race.start()
    results = []
    try:
        for _ in range(30):
            ws = await ws_open(server, topics="project:SEAM-1", since=0)
            await subscribed(ws)
            acked_before = len(race.acked)
            got = await until_pong(ws)
            # Leave without a closing handshake: live events keep pouring in, and
            # a client that stops reading would not see the server's close frame.
            ws.transport.abort()
            await ws.close()
            results.append((seqs(got), acked_before))
    finally:
        await race.finish()
    log = seqs(read_log(server, topics="project:SEAM-1"))
    for got, acked_before in results:
        # A gapless prefix of the project's log, reaching at least every event
        # whose 201 had come back before the ping was sent.
        assert got == log[: len(got)], f"hole or repeat: {sorted(set(log[: len(got)]) - set(got))}"
        acked = [e["seq"] for _, e in race.acked[:acked_before] if e["project"] == "SEAM-1"]
        assert set(acked) <= set(got)


@pytest.mark.parametrize("big_log", ["pending128k"], indirect=True)
# Fewer / more bytes than the 128 KiB a feed holds back: small events, or big ones.
@pytest.mark.parametrize("arriving", [5, 6])
async def test_live_events_arriving_while_the_last_replay_page_is_held_up_follow_it(
    big_log: BigLog, arriving: int
) -> None:
    """The seam itself: the replay has read the end of the log and is stuck
    sending it to a client that does not read; events committed meanwhile
    must follow the replay, once, in order."""
    server = big_log.server
    pub = Publisher(server, big_log.token)
    project = f"HELD-{arriving}"
    registered = await pub.project(project)
    replayed = [registered, *await pub.many([(project, "notice")] * 120, body=BIG_BODY)]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # back-pressure comes soon
    sock.connect(("127.0.0.1", server.port))
    _opened.append(sock)
    ws = await connect(
        f"{server.ws_url}?topics=project:{project}&since=0",
        sock=sock,
        proxy=None,
        open_timeout=TIMEOUT,
        max_size=2**22,
        compression=None,
    )
    _opened.append(ws)
    await asyncio.sleep(0.5)  # not reading: the server's replay is now held up
    body = BIG_BODY if arriving == 6 else "澄清"
    live = [
        await pub.publish(project, "clarification", body=body, data={"n": n})
        for n in range(arriving)
    ]
    assert await subscribed(ws) == max(seqs(replayed))
    got = await until_pong(ws)
    assert seqs(got) == sorted(seqs(replayed)) + seqs(live)
    later = await pub.publish(project, "bid_opening")
    assert await until_pong(ws) == [later]


async def test_adding_a_topic_with_since_loses_nothing_on_the_topics_already_followed(
    big_log: BigLog,
) -> None:
    """One connection: follow project A live, then add project B with since=0.

    While B's (long) replay runs, events keep arriving for A and for B; every
    one must reach the client exactly once.
    """
    server = big_log.server
    pub = Publisher(server, big_log.token)
    project_a = "ADD-A"
    await pub.project(project_a)
    ws = await ws_open(server)
    await ws.send(json.dumps({"op": "subscribe", "topics": [f"project:{project_a}"]}))
    head_a = await subscribed(ws)
    race = Race(pub, [project_a, big_log.project])
    await race.start()
    await ws.send(
        json.dumps({"op": "subscribe", "topics": [f"project:{big_log.project}"], "since": 0})
    )
    got: list[dict[str, Any]] = []
    while (message := await recv(ws))["op"] != "subscribed":
        assert message["op"] == "event", message
        got.append(message["event"])  # live on A until the subscribe is handled
    for _ in range(300):
        got += await recv_events(ws, 1)
        await asyncio.sleep(0.001)
    await race.finish()
    got += await until_pong(ws)
    expected_a = [s for s in seqs(read_log(server, topics=f"project:{project_a}")) if s > head_a]
    expected_b = seqs(read_log(server, topics=f"project:{big_log.project}"))
    got_a = [e["seq"] for e in got if e["project"] == project_a]
    got_b = [e["seq"] for e in got if e["project"] == big_log.project]
    assert got_b == expected_b
    assert got_a == expected_a, f"lost on the earlier topic: {sorted(set(expected_a) - set(got_a))}"
    await ws.close()
    await pub.aclose()


async def test_adding_an_overlapping_topic_with_since_replays_what_was_never_sent(
    server: ServerProcess,
    admin: str,
) -> None:
    """Follow project P live, then add P's category with since=0: the category's
    earlier events, P's included, were never sent and must now arrive once."""
    pub = Publisher(server, admin)
    before = [await pub.project("OV-P"), await pub.project("OV-Q")]
    before += await pub.many(
        [("OV-P", "notice"), ("OV-Q", "notice"), ("OV-P", "clarification")], concurrency=1
    )
    ws = await ws_open(server)
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:OV-P"]}))
    assert await subscribed(ws) == 5  # two registrations, three events
    live = await pub.publish("OV-P", "bid_opening")
    assert await recv_events(ws, 1) == [live]
    await ws.send(json.dumps({"op": "subscribe", "topics": ["category:construction"], "since": 0}))
    await subscribed(ws)
    replayed = await until_pong(ws)
    # 1 to 5 were never sent on this connection; 6 was, live, and is not sent again.
    assert seqs(replayed) == seqs(before)
    await ws.close()
    await pub.aclose()


async def test_adding_a_topic_with_since_does_not_replay_a_live_only_topic(
    server: ServerProcess,
    admin: str,
) -> None:
    """Follow project A live only, then add project B with since=0: B's history
    arrives, A's older events (never asked for) do not, and A's later ones do."""
    pub = Publisher(server, admin)
    await pub.project("LO-A")
    await pub.project("LO-B")
    await pub.many([("LO-A", "notice"), ("LO-B", "notice")], concurrency=1)
    ws = await ws_open(server)
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:LO-A"]}))
    await subscribed(ws)
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:LO-B"], "since": 0}))
    await subscribed(ws)
    assert seqs(await until_pong(ws)) == [2, 4]  # LO-B's registration and notice
    later = await pub.publish("LO-A", "clarification")
    assert await recv_events(ws, 1) == [later]
    await ws.close()
    await pub.aclose()


# --- a killed server -------------------------------------------------------------


async def test_resume_across_sigkill_and_restart(server: ServerProcess, admin: str) -> None:
    pub = Publisher(server, admin)
    await pub.project("KILL-1")
    await pub.project("KILL-2", category="gov_procurement", agency="YW-ZFCG")

    intended = [(f"k{i}", "KILL-1" if i % 2 else "KILL-2") for i in range(400)]
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in intended:
        queue.put_nowait(item)
    acked: dict[str, dict[str, Any]] = {}
    unsure: list[tuple[str, str]] = []  # sent (or tried) when the server died

    async def worker() -> None:
        while not queue.empty():
            key, project = queue.get_nowait()
            try:
                response = await pub.client.post(
                    f"/api/projects/{project}/events",
                    headers={"Idempotency-Key": key},
                    json=with_facts("notice", title=f"公告 {key}"),
                )
            except httpx.HTTPError:
                unsure.append((key, project))
                return
            assert response.status_code == 201, response.text
            acked[key] = response.json()

    ws = await ws_open(server, topics="all", since=0)
    await subscribed(ws)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        try:
            while True:
                seen.extend(await recv_events(ws, 1))
        except ConnectionClosed:
            return

    watcher = asyncio.create_task(watch())
    workers = [asyncio.create_task(worker()) for _ in range(8)]
    deadline = time.monotonic() + 30
    while len(acked) < 120:
        assert time.monotonic() < deadline and not all(w.done() for w in workers)
        await asyncio.sleep(0.005)
    server.stop(signal.SIGKILL)
    await asyncio.wait_for(asyncio.gather(*workers), 30)
    await asyncio.wait_for(watcher, 30)
    # What the client saw before the crash is a gapless prefix of the log.
    assert seqs(seen) == list(range(1, len(seen) + 1))

    server.start()
    log = read_log(server)
    assert seqs(log) == list(range(1, len(log) + 1))
    by_seq = {e["seq"]: e for e in log}
    for event in acked.values():  # every 201 survived, byte for byte
        assert by_seq[event["seq"]] == event
    for event in seen:
        assert by_seq[event["seq"]] == event
    assert server.cli("verify").returncode == 0

    ws = await ws_open(server, topics="all", since=seen[-1]["seq"] if seen else 0)
    assert await subscribed(ws) == len(log)
    seen += await until_pong(ws)
    assert seen == log

    # Retrying the unsure ones with their keys, and sending the rest, completes the
    # log with every intended event exactly once; the head goes on without a gap.
    retried = []
    for key, project in unsure + [queue.get_nowait() for _ in range(queue.qsize())]:
        response = await pub.client.post(
            f"/api/projects/{project}/events",
            headers={"Idempotency-Key": key},
            json=with_facts("notice", title=f"公告 {key}"),
        )
        assert response.status_code in (200, 201), response.text
        if response.status_code == 200:
            assert by_seq[response.json()["seq"]] == response.json()
        retried.append(response.json())
    seen += await until_pong(ws)
    final = read_log(server)
    assert seen == final
    assert seqs(final) == list(range(1, len(final) + 1))
    assert [e["stage"] for e in final[:2]] == ["registered", "registered"]
    titles = sorted(e["title"] for e in final[2:])
    assert titles == sorted(f"公告 {key}" for key, _ in intended)
    assert server.head() == len(intended) + 2
    await ws.close()
    await pub.aclose()


# --- SSE ------------------------------------------------------------------------


async def test_sse_frames_and_resume_with_last_event_id_or_since(
    server: ServerProcess, admin: str
) -> None:
    pub = Publisher(server, admin)
    registered = await pub.project("SSE-1")
    await pub.project("SSE-2", category="mining", agency="YW-KY")
    first = []
    for stage in ("notice", "clarification", "bid_opening", "evaluation"):
        first.append(await pub.publish("SSE-1", stage, data={"stage": stage, "价": 1.5}))
        await pub.publish("SSE-2", "notice")

    client = SSEClient(server, ["project:SSE-1"])
    assert await client.open(0) == 10  # two registrations, eight events
    got = [await client.next_event() for _ in range(3)]
    assert got == [registered, *first[:2]]
    raw = client.response
    assert raw is not None and raw.headers["cache-control"] == "no-cache"
    await client.close()

    missed = [
        *first[2:],
        await pub.publish("SSE-1", "candidates"),
        await pub.publish("SSE-1", "award"),
    ]
    await pub.publish("SSE-2", "auction")
    # A browser's EventSource reconnects to the same URL (here with ?since=0)
    # and adds Last-Event-ID: the header wins.
    head = await client.open(got[-1]["seq"], url_since=0)
    assert head == missed[-1]["seq"] + 1
    assert [await client.next_event() for _ in range(len(missed))] == missed
    live = await pub.publish("SSE-1", "contract")
    assert await client.next_event() == live
    await client.close()

    # `?since=` alone resumes the same way.
    by_query = SSEClient(server, ["project:SSE-1"], use_header=False)
    await by_query.open(first[1]["seq"])
    assert [await by_query.next_event() for _ in range(len(missed) + 1)] == [*missed, live]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(by_query.next_event(), 0.3)
    await by_query.aclose()
    await client.aclose()
    await pub.aclose()


async def test_sse_without_resume_point_is_live_only(server: ServerProcess, admin: str) -> None:
    pub = Publisher(server, admin)
    await pub.project("SSE-L")
    await pub.publish("SSE-L")
    client = SSEClient(server, ["project:SSE-L"])
    assert await client.open(None) == 2  # its registration and one notice
    live = await pub.publish("SSE-L", "clarification")
    assert await client.next_event() == live
    await client.aclose()
    await pub.aclose()


# --- stages filters ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_stages_filter_replay_resume_and_live(
    server: ServerProcess, admin: str, transport: str
) -> None:
    pub = Publisher(server, admin)
    await pub.project("ST-1")
    await pub.project("ST-2")
    await pub.project("ST-LAND", category="land", agency="YW-LAND")
    plan = [
        ("ST-1", "notice"),
        ("ST-2", "notice"),
        ("ST-1", "clarification"),
        ("ST-LAND", "notice"),
        ("ST-2", "bid_opening"),
        ("ST-1", "objection"),
        ("ST-2", "award"),
        ("ST-LAND", "auction"),
        ("ST-1", "notice"),
    ]
    await pub.many(plan, concurrency=1)
    topics, stages = ["category:construction"], ["notice", "award"]

    def expected() -> list[dict[str, Any]]:
        return read_log(server, topics=topics[0], stages=",".join(stages))

    client: Client = (
        WSClient(server, topics, stages) if transport == "ws" else SSEClient(server, topics, stages)
    )
    await client.open(0)
    want = expected()
    assert seqs(want) == [4, 5, 10, 12]  # the log agrees with the plan (1-3: registrations)
    got = [await client.next_event() for _ in range(2)]
    await client.close()
    await pub.many(
        [("ST-1", "evaluation"), ("ST-2", "notice"), ("ST-LAND", "notice")], concurrency=1
    )
    await client.open(got[-1]["seq"])
    got += [await client.next_event() for _ in range(3)]
    await pub.many([("ST-1", "complaint"), ("ST-1", "award"), ("ST-LAND", "award")], concurrency=1)
    got.append(await client.next_event())
    assert got == expected()
    assert all(e["category"] == "construction" and e["stage"] in stages for e in got)
    if isinstance(client, WSClient):
        assert client.ws is not None
        assert await until_pong(client.ws) == []
        await client.close()
    else:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.next_event(), 0.3)
        await client.aclose()
    await pub.aclose()


async def test_ws_stages_apply_per_topic(server: ServerProcess, staff: Staff) -> None:
    """`stages` belongs to the topics it came with: category notices only, but
    everything of one followed project."""
    staff.project("PT-1")
    staff.project("PT-2")
    ws = await ws_open(server)
    await ws.send(
        json.dumps({"op": "subscribe", "topics": ["category:construction"], "stages": ["notice"]})
    )
    await subscribed(ws)
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:PT-2"]}))
    await subscribed(ws)
    published = [
        staff.publish(p, s, **closed(s, {}))  # deadlines passed: openings may follow
        for p, s in [
            ("PT-1", "notice"),
            ("PT-1", "clarification"),
            ("PT-2", "clarification"),
            ("PT-2", "notice"),
            ("PT-1", "bid_opening"),
            ("PT-2", "award"),
        ]
    ]
    want = [e for e in published if e["stage"] == "notice" or e["project"] == "PT-2"]
    assert await until_pong(ws) == want
    await ws.close()
    # The same subscription replayed from the log gives the same events.
    ws = await ws_open(server)
    await ws.send(
        json.dumps(
            {
                "op": "subscribe",
                "topics": ["category:construction"],
                "stages": ["notice"],
                "since": 0,
            }
        )
    )
    assert await subscribed(ws) == 8  # two registrations, six events
    replayed = await until_pong(ws)
    assert seqs(replayed) == [e["seq"] for e in published if e["stage"] == "notice"]
    await ws.send(json.dumps({"op": "subscribe", "topics": ["project:PT-2"], "since": 0}))
    assert await subscribed(ws) == 8
    replayed += await until_pong(ws)
    # The replay of project PT-2 also has its registration (seq 2), which went
    # by before the live subscription began.
    assert sorted(seqs(replayed)) == [2, *seqs(want)]
    assert len(replayed) == len(want) + 1
    await ws.close()
