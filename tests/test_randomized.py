"""A seeded random workout of the delivery guarantee.

Publishers post events across several projects, categories, agencies and
regions while 20 clients (WebSocket and SSE, URL and op forms, some with a
`stages` filter, some live-only) keep disconnecting and resuming with the
last seq they processed. In the end every client must have processed exactly
the events of the log that match its subscription, once each, in seq order.
The expectation is computed from `GET /api/events`, independently of the
streams. Set SUNBID_TEST_SEED to run one chosen seed instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import CLOSED, ServerProcess, with_facts

SEEDS = (
    [int(os.environ["SUNBID_TEST_SEED"])]
    if "SUNBID_TEST_SEED" in os.environ
    else [
        20261128,
        7,
    ]
)
TIMEOUT = 10.0

PROJECTS = {  # id: (category, agency, region)
    "RND-0": ("construction", "AG-A", "330782"),
    "RND-1": ("construction", "AG-B", "330783"),
    "RND-2": ("gov_procurement", "AG-A", "330783"),
    "RND-3": ("land", "AG-C", "330782"),
    "RND-4": ("mining", "AG-C", None),
    "RND-5": ("soe_procurement", "AG-B", "330784"),
}
# Stages that may follow each other in any order and repeat (one award per
# project is all the checks before publishing allow: performance stands in).
STAGES = {
    "construction": [
        "notice",
        "clarification",
        "bid_opening",
        "evaluation",
        "candidates",
        "performance",
        "objection",
    ],
    "gov_procurement": [
        "plan",
        "notice",
        "clarification",
        "bid_opening",
        "performance",
        "complaint",
    ],
    "land": ["notice", "auction", "performance", "objection"],
    "mining": ["notice", "clarification", "auction", "performance"],
    "soe_procurement": ["notice", "bid_opening", "candidates", "performance", "penalty"],
}
TOPICS = (
    ["all"]
    + [f"project:{p}" for p in PROJECTS]
    + [f"category:{c}" for c in STAGES]
    + ["category:rural_property"]
    + ["agency:AG-A", "agency:AG-B", "agency:AG-C", "agency:AG-NONE"]
    + ["region:330782", "region:330783", "region:330784"]
)
FILTER_STAGES = sorted({s for stages in STAGES.values() for s in stages})


def matches(event: dict[str, Any], topics: list[str], stages: list[str] | None) -> bool:
    if stages is not None and event["stage"] not in stages:
        return False
    own = {
        "all",
        f"project:{event['project']}",
        f"category:{event['category']}",
        f"agency:{event['agency']}",
    }
    if event["region"] is not None:
        own.add(f"region:{event['region']}")
    return bool(own.intersection(topics))


class Lagging(Exception):
    pass


@dataclass
class Connection:
    """One connection's reader: messages go into a queue the client processes at its pace."""

    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    ws: ClientConnection | None = None
    response: httpx.Response | None = None


class RandomClient:
    """Follows its topics through any of `servers` (each with an HTTP client on
    it): every connection goes to one chosen at random, resuming with `since`."""

    def __init__(
        self,
        number: int,
        servers: Sequence[tuple[ServerProcess, httpx.AsyncClient]],
        rng: random.Random,
    ) -> None:
        self.name = f"client {number}"
        self.servers, self.rng = servers, rng
        self.server, self.http = servers[0]
        self.topics = rng.sample(TOPICS, rng.choice([1, 1, 2, 3]))
        self.stages = (
            sorted(rng.sample(FILTER_STAGES, rng.randint(1, 3))) if rng.random() < 0.35 else None
        )
        self.transport = rng.choice(["ws-url", "ws-op", "ws-url", "sse-header", "sse-query"])
        self.start: int | None = None if rng.random() < 0.15 else 0  # None: live only
        self.got: list[dict[str, Any]] = []
        self.connections = 0
        self.lagged = 0
        self.conn: Connection | None = None

    def __repr__(self) -> str:
        return (
            f"<{self.name} {self.transport} topics={self.topics} stages={self.stages} "
            f"start={self.start} connections={self.connections}>"
        )

    def since(self) -> int | None:
        return self.got[-1]["seq"] if self.got else self.start

    # --- connecting ------------------------------------------------------------

    async def connect(self) -> None:
        self.server, self.http = self.rng.choice(self.servers)
        since = self.since()
        self.connections += 1
        self.conn = conn = Connection()
        query: dict[str, Any] = {"topics": ",".join(self.topics)}
        if self.stages:
            query["stages"] = ",".join(self.stages)
        if self.transport.startswith("ws"):
            if self.transport == "ws-url" and since is not None:
                query["since"] = since
            url = self.server.ws_url + (
                f"?{urlencode(query)}" if self.transport == "ws-url" else ""
            )
            conn.ws = await connect(
                url, proxy=None, open_timeout=TIMEOUT, max_size=2**22, compression=None
            )
            if self.transport == "ws-op":
                op: dict[str, Any] = {"op": "subscribe", "topics": self.topics}
                if self.stages:
                    op["stages"] = self.stages
                if since is not None:
                    op["since"] = since
                await conn.ws.send(json.dumps(op))
            conn.task = asyncio.create_task(self._read_ws(conn))
        else:
            headers = {}
            if since is not None and self.transport == "sse-header":
                headers["Last-Event-ID"] = str(since)
            elif since is not None:
                query["since"] = since
            request = self.http.build_request("GET", "/api/stream", params=query, headers=headers)
            conn.response = await self.http.send(request, stream=True)
            assert conn.response.status_code == 200
            conn.task = asyncio.create_task(self._read_sse(conn))
        head = await asyncio.wait_for(conn.queue.get(), TIMEOUT)
        assert isinstance(head, int), head
        if self.start is None:
            self.start = head

    async def _read_ws(self, conn: Connection) -> None:
        assert conn.ws is not None
        try:
            async for raw in conn.ws:
                message = json.loads(raw)
                if message["op"] == "event":
                    conn.queue.put_nowait(message["event"])
                elif message["op"] == "subscribed":
                    conn.queue.put_nowait(message["head"])
                elif message["op"] == "pong":
                    conn.queue.put_nowait("pong")
                else:
                    conn.queue.put_nowait(AssertionError(f"unexpected {message}"))
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == 4008:
                conn.queue.put_nowait(Lagging())
                return
        conn.queue.put_nowait(AssertionError(f"{self.name}: the server closed the stream"))

    async def _read_sse(self, conn: Connection) -> None:
        assert conn.response is not None
        fields: dict[str, str] = {}
        async for line in conn.response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if not fields:
                continue
            frame, fields = fields, {}
            if frame.get("event") == "subscribed":
                conn.queue.put_nowait(json.loads(frame["data"])["head"])
            elif frame.get("event") == "error" and "lagging" in frame["data"]:
                conn.queue.put_nowait(Lagging())
                return
            else:
                event = json.loads(frame["data"])
                assert frame["id"] == str(event["seq"]) and frame["event"] == event["stage"]
                conn.queue.put_nowait(event)
        conn.queue.put_nowait(AssertionError(f"{self.name}: the server ended the stream"))

    async def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if conn.task is not None:
            conn.task.cancel()
            with contextlib.suppress(BaseException):
                await conn.task
        if conn.ws is not None:
            if self.rng.random() < 0.3:
                conn.ws.transport.abort()  # vanish without a closing handshake
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if conn.response is not None:
            await conn.response.aclose()

    # --- processing ------------------------------------------------------------

    def _process(self, item: Any) -> bool:
        """Take one queued item; False if the connection has to be replaced."""
        if isinstance(item, Lagging):
            self.lagged += 1
            return False
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, dict), item
        self.got.append(item)
        return True

    async def wander(self, done: asyncio.Event) -> None:
        """Connect, read for a while, drop off, come back: until publishing is over."""
        while not done.is_set():
            if self.conn is None:
                await self.connect()
            assert self.conn is not None
            budget = self.rng.randint(1, 80)
            deadline = asyncio.get_running_loop().time() + self.rng.uniform(0.0, 0.4)
            healthy = True
            while healthy and budget > 0:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.conn.queue.get(), left)
                except TimeoutError:
                    break
                healthy = self._process(item)
                budget -= 1
            if not healthy or self.rng.random() < 0.75:
                await self.disconnect()
                await asyncio.sleep(self.rng.uniform(0.0, 0.15))

    async def finish(self, log: list[dict[str, Any]]) -> None:
        """Read until this client has caught up with the final log; then nothing more."""
        while True:
            if self.conn is None:
                await self.connect()
            assert self.conn is not None
            want = [
                e["seq"]
                for e in log
                if (self.start is not None and e["seq"] > self.start)
                and matches(e, self.topics, self.stages)
            ]
            if self.transport.startswith("ws"):
                assert self.conn.ws is not None
                await self.conn.ws.send('{"op":"ping"}')
                healthy = True
                while (
                    healthy
                    and (item := await asyncio.wait_for(self.conn.queue.get(), TIMEOUT)) != "pong"
                ):
                    healthy = self._process(item)
            else:
                healthy = True
                while healthy and want and (not self.got or self.got[-1]["seq"] < want[-1]):
                    healthy = self._process(await asyncio.wait_for(self.conn.queue.get(), TIMEOUT))
                if healthy:  # nothing may follow
                    await asyncio.sleep(0.2)
                    while not self.conn.queue.empty():
                        healthy = self._process(self.conn.queue.get_nowait())
            if healthy:
                await self.disconnect()
                return
            await self.disconnect()


async def publish_randomly(
    staff: httpx.AsyncClient | Sequence[httpx.AsyncClient], rng: random.Random, rounds: int
) -> int:
    """Bursts of publications, each through one of `staff` (clients on different servers)."""
    publishers = [staff] if isinstance(staff, httpx.AsyncClient) else list(staff)
    published = 0
    for _ in range(rounds):
        burst = []
        for _ in range(rng.choice([1, 1, 2, 4, 8])):
            project = rng.choice(list(PROJECTS))
            stage = rng.choice(STAGES[PROJECTS[project][0]])
            burst.append(
                rng.choice(publishers).post(
                    f"/api/projects/{project}/events",
                    json=with_facts(
                        stage,
                        title=f"{stage} {project}",
                        data={**(CLOSED if stage == "notice" else {}), "r": rng.random()},
                    ),
                )
            )
        for response in await asyncio.gather(*burst):
            assert response.status_code == 201, response.text
            published += 1
        await asyncio.sleep(rng.uniform(0, 0.03))
    return published


async def read_log(public: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The whole log through `GET /api/events`: independent of the streams."""
    log: list[dict[str, Any]] = []
    while True:
        since = log[-1]["seq"] if log else 0
        page = (await public.get("/api/events", params={"since": since, "limit": 1000})).json()
        log += page["items"]
        if len(page["items"]) < 1000:
            break
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    return log


async def workout(
    seed: int,
    servers: Sequence[tuple[ServerProcess, httpx.AsyncClient]],
    staff: Sequence[httpx.AsyncClient],
) -> tuple[list[RandomClient], list[dict[str, Any]]]:
    """Projects created, a history published, then 20 random clients wander
    over `servers` while publishing goes on through `staff`; they finish by
    catching up with the final log. Returns the clients and that log."""
    rng = random.Random(seed)
    for project, (category, agency, region) in PROJECTS.items():
        response = await staff[0].post(
            "/api/projects",
            json={
                "id": project,
                "title": f"随机 {project}",
                "category": category,
                "agency": agency,
                "region": region,
            },
        )
        assert response.status_code == 201, response.text
    await publish_randomly(staff, rng, 40)  # a history to replay

    clients = [RandomClient(n, servers, rng) for n in range(20)]
    done = asyncio.Event()
    wandering = [asyncio.create_task(c.wander(done)) for c in clients]
    try:
        await publish_randomly(staff, rng, 120)
        done.set()
        await asyncio.wait_for(asyncio.gather(*wandering), 30)
        log = await read_log(servers[0][1])
        await asyncio.wait_for(asyncio.gather(*(c.finish(log) for c in clients)), 60)
    finally:
        for task in wandering:
            task.cancel()
        for client in clients:
            with contextlib.suppress(BaseException):
                await client.disconnect()
    return clients, log


def assert_each_saw_its_events(
    clients: Sequence[RandomClient], log: list[dict[str, Any]], seed: int
) -> None:
    assert sum(c.connections for c in clients) > 100  # plenty of resuming happened
    for client in clients:
        assert client.start is not None
        expected = [
            e for e in log if e["seq"] > client.start and matches(e, client.topics, client.stages)
        ]
        got = [e["seq"] for e in client.got]
        want = [e["seq"] for e in expected]
        assert got == want, (
            f"seed {seed} {client!r}: missing {sorted(set(want) - set(got))[:8]}"
            f" doubled {sorted({s for s in got if got.count(s) > 1})[:8]}"
        )
        assert client.got == expected, f"seed {seed} {client!r}: events differ from the log"


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_clients_each_see_exactly_their_events_once_in_order(
    server: ServerProcess, admin: str, seed: int
) -> None:
    async with (
        httpx.AsyncClient(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {admin}"}
        ) as staff,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as public,
    ):
        clients, log = await workout(seed, [(server, public)], [staff])
    assert_each_saw_its_events(clients, log, seed)
