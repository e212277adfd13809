"""A real push service on loopback for end-to-end tests.

It plays a browser vendor's push service (RFC 8030) and the browser behind
it: `new_subscriber()` makes a subscription with real keys, and each push is
checked the way a strict push service checks it (VAPID JWT signed with the
key in `k=`, `aud` its own origin, `exp` in the next 24 h, `TTL`, `Urgency`,
`Topic`, `Content-Encoding`, size), then decrypted with the subscriber's
private key as the browser would. Anything that fails is refused with the
status autopush would give and recorded with the reason, so a test can assert
that nothing bad was ever accepted.

Answers can be set globally or per subscriber (404, 410, 413, 429 with
`Retry-After`, 500, or hang until released), and `fast` mode answers 201
without checking or decrypting, for throughput benchmarks.

    async with PushService() as service:          # in an async test
        sub = service.new_subscriber()            # PushSubscription.toJSON()
        ...
        await service.wait_for(lambda: len(service.messages) == 1)

    with PushService.in_thread() as service:      # in a sync test
        ...

`stop()` then `start()` takes the service down and brings it back on the same
port with the same subscribers (from a sync test: `service.call(service.stop())`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from push.crypto import DecryptError, decrypt, public_bytes
from tests.standins import in_thread

MAX_BODY = 4096
MAX_EXP_AHEAD = 24 * 3600
T = TypeVar("T")
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


@dataclass(frozen=True)
class Answer:
    """What the service answers a push that passed verification."""

    status: int = 201
    retry_after: int | None = None
    hang: bool = False  # hold the request until `release()`, then answer `status`


ACCEPT = Answer()
NOT_FOUND = Answer(404)
GONE = Answer(410)
TOO_LARGE = Answer(413)
SERVER_ERROR = Answer(500)
HANG = Answer(hang=True)


def slow_down(seconds: int) -> Answer:
    return Answer(429, retry_after=seconds)


@dataclass(frozen=True)
class Message:
    """A push accepted with 201, decrypted."""

    subscriber: str
    payload: Any
    ttl: int
    urgency: str | None
    topic: str | None
    exp: int
    received_at: float


@dataclass(frozen=True)
class Attempt:
    """Every request the service saw, and what it answered."""

    subscriber: str
    status: int
    reason: str  # why it was refused, or "" when verified (any answer)
    verified: bool
    peer: tuple[str, int] | None  # the client's address: one per TCP connection
    at: float = 0.0  # when it was answered, by the service's clock


@dataclass
class Subscriber:
    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    queued: deque[Answer] = field(default_factory=deque)
    standing: Answer | None = None


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PushService:
    def __init__(self, *, clock: Callable[[], float] = time.time, port: int = 0) -> None:
        self.clock = clock
        self.fast = False
        self.default_answer = ACCEPT
        self.messages: list[Message] = []
        self.attempts: list[Attempt] = []
        self.port = port  # 0: a free one; fixed for endpoints stored in a fixture
        self._subscribers: dict[str, Subscriber] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._released: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.hanging = 0

    # --- running ------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """Also the `SUNBID_PUSH_ALLOWED_HOSTS` entry that admits this service."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> PushService:
        self._loop = asyncio.get_running_loop()
        self._released = asyncio.Event()
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/push/{id}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        # A fresh service gets a free port; a restarted one listens where it did.
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._released is not None:
            self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> PushService:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[PushService]:
        """The service on its own event loop in a background thread, for sync tests."""
        with in_thread(cls(**kwargs)) as service:
            yield service

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        """Run `coroutine` on the service's own loop and wait for it (for `in_thread`)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # --- set-up by tests ----------------------------------------------------------------

    def new_subscriber(
        self, *, application_server_key: str | None = None, answer: Answer | None = None
    ) -> dict[str, Any]:
        """A subscription as `PushSubscription.toJSON()` gives it.

        With `application_server_key`, pushes signed with any other VAPID key are
        refused with 403, as real push services do.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        auth = uuid.uuid4().bytes
        sid = uuid.uuid4().hex
        endpoint = f"{self.origin}/push/{sid}"
        with self._lock:
            self._subscribers[sid] = Subscriber(
                sid, endpoint, key, auth, application_server_key, standing=answer
            )
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": _b64(public_bytes(key.public_key())), "auth": _b64(auth)},
        }

    def adopt(
        self,
        endpoint: str,
        private_key: ec.EllipticCurvePrivateKey,
        auth: bytes,
        application_server_key: str | None,
    ) -> None:
        """Serve again a subscriber made earlier (kept in a fixture) at its endpoint."""
        sid = endpoint.rstrip("/").rpartition("/")[2]
        with self._lock:
            self._subscribers[sid] = Subscriber(
                sid, endpoint, private_key, auth, application_server_key
            )

    def answer(self, answer: Answer, endpoint: str | None = None) -> None:
        """From now on answer verified pushes (to one subscriber, or to all) so."""
        with self._lock:
            if endpoint is None:
                self.default_answer = answer
            else:
                self._subscriber(endpoint).standing = answer

    def queue(self, endpoint: str, *answers: Answer) -> None:
        """Answer the next pushes to `endpoint` so, once each, before the standing answer."""
        with self._lock:
            self._subscriber(endpoint).queued.extend(answers)

    def release(self) -> None:
        """Let every hanging request answer; later hangs hang again."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._release_now)

    def _release_now(self) -> None:
        assert self._released is not None
        self._released.set()
        self._released = asyncio.Event()

    # --- what tests read ----------------------------------------------------------------

    def received(self, endpoint: str) -> list[Any]:
        """Decrypted payloads accepted for one subscriber, in arrival order."""
        sid = self._subscriber(endpoint).id
        with self._lock:
            return [m.payload for m in self.messages if m.subscriber == sid]

    def tries(self, endpoint: str) -> list[Attempt]:
        sid = self._subscriber(endpoint).id
        with self._lock:
            return [a for a in self.attempts if a.subscriber == sid]

    @property
    def rejections(self) -> list[Attempt]:
        """Requests refused because they failed verification."""
        with self._lock:
            return [a for a in self.attempts if not a.verified]

    @property
    def connections(self) -> int:
        """Distinct TCP connections seen (a pooled client reuses a few)."""
        with self._lock:
            return len({a.peer for a in self.attempts if a.peer is not None})

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"push service: condition not met in {timeout} s")
            await asyncio.sleep(0.005)

    def wait_for_sync(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"push service: condition not met in {timeout} s")
            time.sleep(0.005)

    def _subscriber(self, endpoint: str) -> Subscriber:
        return self._subscribers[endpoint.rstrip("/").rpartition("/")[2]]

    # --- the push endpoint --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = (str(peername[0]), int(peername[1])) if peername else None
        sid = request.match_info["id"]
        if self.fast:
            return self._record(Attempt(sid, 201, "", True, peer), created=True)
        with self._lock:
            subscriber = self._subscribers.get(sid)
        try:
            if subscriber is None:
                raise Refused(404, "no such subscription")
            message = self._verify(subscriber, request.headers, body)
        except Refused as refused:
            self._record(Attempt(sid, refused.status, refused.reason, False, peer))
            return web.Response(status=refused.status, text=refused.reason)
        answer = self._next_answer(subscriber)
        if answer.hang:
            assert self._released is not None
            released = self._released
            self.hanging += 1
            try:
                await released.wait()
            finally:
                self.hanging -= 1
        if answer.status == 201:
            with self._lock:
                self.messages.append(message)
        headers = {} if answer.retry_after is None else {"Retry-After": str(answer.retry_after)}
        return self._record(
            Attempt(sid, answer.status, "", True, peer),
            created=answer.status == 201,
            headers=headers,
        )

    def _record(
        self, attempt: Attempt, *, created: bool = False, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        attempt = replace(attempt, at=self.clock())
        with self._lock:
            self.attempts.append(attempt)
        extra = dict(headers or {})
        if created:
            extra["Location"] = f"/m/{uuid.uuid4().hex}"
        return web.Response(status=attempt.status, headers=extra)

    def _next_answer(self, subscriber: Subscriber) -> Answer:
        with self._lock:
            if subscriber.queued:
                return subscriber.queued.popleft()
            return subscriber.standing or self.default_answer

    def _verify(self, subscriber: Subscriber, headers: Mapping[str, str], body: bytes) -> Message:
        exp = self._verify_vapid(subscriber, headers.get("Authorization", ""))
        ttl = headers.get("TTL")
        if ttl is None:
            raise Refused(400, "missing TTL header")
        if not (ttl.isascii() and ttl.isdigit()):
            raise Refused(400, f"TTL {ttl!r} is not a non-negative integer")
        urgency = headers.get("Urgency")
        if urgency is not None and urgency not in URGENCIES:
            raise Refused(400, f"Urgency {urgency!r} is not one of {sorted(URGENCIES)}")
        topic = headers.get("Topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            raise Refused(400, f"Topic {topic!r} is not 1-32 base64url characters")
        if headers.get("Content-Encoding") != "aes128gcm":
            raise Refused(400, "Content-Encoding must be aes128gcm")
        if len(body) > MAX_BODY:
            raise Refused(413, f"body is {len(body)} bytes, more than {MAX_BODY}")
        if not body:
            raise Refused(400, "no payload")
        try:
            plaintext = decrypt(body, subscriber.private_key, subscriber.auth)
        except DecryptError as exc:
            raise Refused(400, f"cannot decrypt: {exc}") from None
        try:
            payload = orjson.loads(plaintext)
        except orjson.JSONDecodeError:
            raise Refused(400, "payload is not JSON") from None
        return Message(subscriber.id, payload, int(ttl), urgency, topic, exp, self.clock())

    def _verify_vapid(self, subscriber: Subscriber, authorization: str) -> int:
        """RFC 8292 §2-3; returns the token's `exp`."""
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise Refused(401, "Authorization is not a vapid t=…, k=… header")
        params = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        token, k = params.get("t", ""), params.get("k", "")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(k))
        except ValueError:
            raise Refused(401, "vapid k= is not a P-256 public key") from None
        wanted = subscriber.application_server_key
        if wanted is not None and k != wanted:
            raise Refused(403, "vapid key is not the one the subscription was made with")
        pieces = token.split(".")
        if len(pieces) != 3:
            raise Refused(401, "vapid t= is not a JWT")
        try:
            header = orjson.loads(_unb64(pieces[0]))
            claims = orjson.loads(_unb64(pieces[1]))
            signature = _unb64(pieces[2])
        except (ValueError, orjson.JSONDecodeError):
            raise Refused(401, "vapid JWT is not base64url JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            raise Refused(401, "vapid JWT alg must be ES256")
        if len(signature) != 64:
            raise Refused(401, "vapid JWT signature is not 64 bytes (r || s)")
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            key.verify(der, f"{pieces[0]}.{pieces[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Refused(401, "vapid JWT signature does not verify with k=") from None
        if not isinstance(claims, dict):
            raise Refused(401, "vapid JWT claims are not an object")
        if claims.get("aud") != self.origin:
            raise Refused(401, f"vapid aud {claims.get('aud')!r} is not {self.origin!r}")
        exp, now = claims.get("exp"), self.clock()
        if isinstance(exp, bool) or not isinstance(exp, int):
            raise Refused(401, "vapid exp is not an integer")
        if exp <= now:
            raise Refused(401, "vapid JWT has expired")
        if exp > now + MAX_EXP_AHEAD:
            raise Refused(401, "vapid exp is more than 24 hours ahead")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise Refused(401, "vapid sub must be a mailto: or https: URL")
        return exp


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
