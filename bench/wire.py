"""Minimal clients for the load generator: HTTP/1.1 keep-alive and RFC 6455.

They do only what the benchmarks need, so that one core can drive tens of
thousands of deliveries per second and the figures describe the servers,
not the generator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import orjson

HOST = "127.0.0.1"


class HttpConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self.reader, self.writer, self.port = reader, writer, port
        self.src: str | None = None

    @classmethod
    async def open(cls, port: int, src: str | None = None) -> HttpConn:
        """A connection to HOST:port, from source address `src` if given."""
        local = (src, 0) if src else None
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=local)
        self = cls(reader, writer, port)
        self.src = src
        return self

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        if body or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if self.reader.at_eof():
            await self.reconnect()
        self.writer.write(data)
        status_line = await self.reader.readline()
        if not status_line:
            # The server closed an idle keep-alive connection as we wrote:
            # the request was not read, so sending it again is safe.
            await self.reconnect()
            self.writer.write(data)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked = -1, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            return status, b"".join(parts)
        if length < 0:
            return status, await self.reader.read()
        return status, await self.reader.readexactly(length)

    async def reconnect(self) -> None:
        self.writer.close()
        local = (self.src, 0) if self.src else None
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, local_addr=local)

    async def get(self, path: str, token: str = "") -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return await self.request("GET", path, headers=headers)

    async def post_json(self, path: str, obj: Any, token: str = "") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.request("POST", path, orjson.dumps(obj), headers)

    def close(self) -> None:
        self.writer.close()


# The WebSocket client.
#
# websockets' own client parses each frame through a generator-based protocol
# and an assembler, which costs the load generator several times what the
# server spends per frame; this one only splits frames, answers pings and hands
# the text payload to a callback, so one core can drive tens of thousands of
# deliveries per second.

_LINGER0 = struct.pack("ii", 1, 0)


class WSConn(asyncio.Protocol):
    def __init__(self, request: bytes, on_text: Callable[[WSConn, bytes], None]) -> None:
        self.request = request
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshaken = False
        self.buf = b""
        self.fragments: list[bytes] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        # Free slots for the benchmark's per-connection state.
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.count = 0
        self.last = 0
        self.errors = 0
        self.lat: list[int] | None = None
        self.size = 0  # bytes of the last event frame

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                line = buf.split(b"\r\n", 1)[0].decode(errors="replace")
                if not self.open.done():
                    self.open.set_exception(ConnectionError(f"handshake refused: {line}"))
                self.abort()
                return
            self.handshaken = True
            if not self.open.done():
                self.open.set_result(None)
            buf = buf[end + 4 :]
        i, n = 0, len(buf)
        while n - i >= 2:
            b0, ln = buf[i], buf[i + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln, h = (buf[i + 2] << 8) | buf[i + 3], 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln, h = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            end = i + h + ln
            if end > n:
                break
            payload = buf[i + h : end]
            i = end
            op = b0 & 0x0F
            if op == 1 or op == 2 or op == 0:
                if not b0 & 0x80:  # fragment
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join([*self.fragments, payload])
                    self.fragments = []
                self.on_text(self, payload)
            elif op == 9:
                self._send(0xA, payload)
            elif op == 8:
                if len(payload) >= 2:
                    self.close_code = int.from_bytes(payload[:2], "big")
                    self.close_reason = payload[2:].decode(errors="replace")
                self.closed = True
                self._send(0x8, payload[:2])
                assert self.transport is not None
                self.transport.close()
                break
        self.buf = buf[i:] if i < n else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {self.close_code}"))
            self.ready.exception()  # mark retrieved

    def _send(self, opcode: int, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        if n:
            key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            data = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
        self.transport.write(header + mask + data)

    def send_text(self, data: bytes) -> None:
        self._send(0x1, data)

    def abort(self) -> None:
        """Drop the connection at once with a RST, leaving no TIME_WAIT behind."""
        if self.transport is not None and not self.transport.is_closing():
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            self.transport.abort()


def _handshake(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def connect_ws(
    port: int,
    path: str,
    on_text: Callable[[WSConn, bytes], None],
    src: str | None = None,
    timeout: float = 30.0,
) -> WSConn:
    loop = asyncio.get_running_loop()
    local = (src, 0) if src else None
    _, conn = await asyncio.wait_for(
        loop.create_connection(
            lambda: WSConn(_handshake(path, port), on_text), HOST, port, local_addr=local
        ),
        timeout,
    )
    await asyncio.wait_for(conn.open, timeout)
    return conn
