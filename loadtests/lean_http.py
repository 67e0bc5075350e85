"""A lean HTTP/1.1 client for the load generator: keep-alive connections on asyncio protocols (uvloop), responses
parsed by aiohttp's C parser (llhttp), nothing else.

Why not locust's own client: on the two cores the stack under test shares with its generator, locust's gevent
client cost ~310 µs of CPU a request (~90 % of a core at the design peak, ~2,900 requests/s), this one
~90 µs (BENCHMARKS.md, "the generator"). Locust still runs the test: its shape, statistics, reports and SLO
gate (loadtests/locustfile.py relays every request to its statistics).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from aiohttp.http_parser import HttpResponseParser
from multidict import CIMultiDictProxy

LIMIT = 2**16  # the parser's buffer: a response body larger than this is read in pieces


class HttpError(Exception):
    """No answer: refused, reset or closed mid-answer (a browser's "network error"; too slow: TimeoutError)."""


class _Stale(Exception):
    """A kept connection failed before any answer: the server had closed it."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[Any, Any]] | None = None
        self.closed = False
        self.answered = False  # the answer's head to the request in flight arrived (a failure now is not staleness)
        self.parser: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one without being its subclass
        # The parser asks its protocol only for pause_reading/resume_reading (below), not aiohttp's BaseProtocol.
        self.parser = HttpResponseParser(self, asyncio.get_running_loop(), LIMIT,  # type: ignore[arg-type]
                                         auto_decompress=False)

    @property
    def connected(self) -> bool:  # asked by the parser's body reader
        return not self.closed

    def data_received(self, data: bytes) -> None:
        try:
            messages, _, _ = self.parser.feed_data(data)
        except Exception as e:  # a malformed answer: this connection is done
            self._fail(HttpError(f"bad answer: {e}"))
            self.close()
            return
        for message, payload in messages:
            self.answered = True
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((message, payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        with contextlib.suppress(Exception):  # an answer cut short: its reader gets the error below
            self.parser.feed_eof()
        self._fail(HttpError("connection closed"))

    # flow control asked for by the parser's payload reader: bodies here are small, read at once
    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes) -> Answer:
        assert self.transport is not None
        self.answered = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        message, payload = await self.waiter
        body = await payload.read()
        if not payload.is_eof():
            raise HttpError("answer cut short")
        if message.should_close:
            self.close()
        return Answer(message.code, message.headers, body)


class Http:
    """Requests to one origin (`http://host:port`) over a pool of keep-alive connections, at most `connections`
    of them (as locust's pool had its `concurrency`): a request beyond waits its turn, the wait counted in its
    time. Unbounded, a hiccup of the server became a storm: every late answer left its request's successor to
    open a connection of its own, thousands at once, and ingest spent itself accepting them (its /healthz did
    not answer for a minute; BENCHMARKS.md)."""

    def __init__(self, origin: str, *, timeout_s: float = 10.0, connections: int = 256) -> None:
        parts = urlsplit(origin)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._turns = asyncio.Semaphore(connections)

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      body: bytes | None = None) -> Answer:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"Host: ", self.host_header, b"\r\n"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        request = b"".join(head) + (body or b"")
        async with asyncio.timeout(self.timeout_s), self._turns:
            try:
                return await self._exchange(request, reuse=True)
            except _Stale:  # a kept connection the server had closed: again on a new one, as browsers do
                return await self._exchange(request, reuse=False)

    async def _exchange(self, request: bytes, *, reuse: bool) -> Answer:
        connection: _Connection | None = None
        reused = False
        try:
            while reuse and self._idle and connection is None:
                kept = self._idle.pop()
                connection, reused = (kept, True) if not kept.closed else (None, False)
            if connection is None:
                _, connection = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
            answer = await connection.exchange(request)
        except (OSError, HttpError) as e:
            if connection is not None:
                connection.close()
            if reused and connection is not None and not connection.answered:
                raise _Stale() from e
            raise HttpError(str(e) or type(e).__name__) from e
        except BaseException:  # the timeout (a cancel): the connection is out of step
            if connection is not None:
                connection.close()
            raise
        if not connection.closed:
            self._idle.append(connection)
        return answer

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
