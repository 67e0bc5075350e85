"""The hot route answered straight from the connection: no web.Request, no middleware chain, headers pre-built.

aiohttp's web layer costs a bare app ~35 µs a request here (a protocol on the same C parser answers
3× the requests: BENCHMARKS.md), as much as all of a submission's own work. A FastRoute is answered
from `data_received` when nothing about the request needs that layer: HTTP/1.1, the whole body
already arrived (and within MAX_BODY), no Expect or Upgrade, not asking to close, the connection idle
(no earlier request unanswered) and no CORS header to add (runtime/cors.py). Anything else — a slow or
chunked body, a pipelined request behind another, HTTP/1.0, another method or path, a query string — goes
through aiohttp as before, to the same handler logic registered as an ordinary route (OpenAPI, 405, 408, 413
unchanged). A route's `begin` is given the request as a Call (headers, peer, body) and returns a future: the
store's reply (a submission's synchronous checks, then its batch), or a task running the route's coroutine (an
attempt start, the current attempt); its `finish` turns what the future holds into (status, body); ApiError
from either is the one error shape. What the middleware does for every other request is done here too: the
request id (echoed, and bound for the route's log lines), the overload gate, the metrics.

A FastGet is a GET answered the same way from what the app holds in memory (the quiz page's views, its
hashed assets, GET /v1/contest: runtime/cached.py), written at once — 200, gzipped when accepted, or 304;
a query string, HEAD or anything else goes through aiohttp to the same answer."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import http
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo  # aiohttp's own: pinned to 3.14 in pyproject

from runtime.cached import Cached, matches
from runtime.errors import Unavailable
from runtime.web import (
    MAX_BODY,
    Call,
    Gate,
    api_error,
    error_body,
    request_id_of,
    request_latency,
    requests_counted,
)

Answer = tuple[int, bytes]  # status, JSON body
log = structlog.get_logger()


@dataclass(frozen=True)
class FastRoute:
    """`method` `path` answered from the connection: `begin(call)` → a future, `finish(its result)` → answer."""

    path: str
    begin: Callable[[Call], asyncio.Future[Any]]
    finish: Callable[[Any], Answer]
    app: str  # the metrics' app label
    gate: Gate
    cors: frozenset[str] = frozenset()  # origins whose requests need CORS headers: those go through aiohttp
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()  # added to a success (2xx) answer, as the aiohttp route adds them
    # A route with path values: `path` is its template (the metrics' label, as aiohttp's canonical), `pattern`
    # the request targets it takes here, strictly (digits, ASCII ids: anything percent-encoded or odd goes
    # through aiohttp); its groups are the Call's params.
    pattern: re.Pattern[str] | None = None


def coroutine_route(path: str, answer: Callable[[Call], Awaitable[Answer]], app: str, gate: Gate,
                    **options: Any) -> FastRoute:
    """A FastRoute whose work is one coroutine answering (status, body) — the same one its aiohttp route awaits:
    run as a task, its answer written as it is."""
    return FastRoute(path, lambda call: asyncio.ensure_future(answer(call)), _as_it_is, app, gate, **options)


def _as_it_is(answer: Answer) -> Answer:
    return answer


Patterns = tuple[tuple[re.Pattern[str], str], ...]  # a patterned route's pattern and its key in FAST_ROUTES


def patterned(routes: dict[str, FastRoute | FastGet]) -> Patterns:
    """The routes matched by pattern (looked for once per server, not per connection)."""
    return tuple((r.pattern, key) for key, r in routes.items() if isinstance(r, FastRoute) and r.pattern is not None)


@dataclass(frozen=True)
class FastGet:
    """GET `path` answered from the connection with what `current()` holds in memory (runtime/cached.py): a
    page, an asset, a summary — 200, gzipped when accepted, or 304 when the client holds that version."""

    path: str
    current: Callable[[], Cached]
    content_type: str
    cache_control: str
    app: str  # the metrics' app label
    headers: tuple[tuple[str, str], ...] = ()
    cors: frozenset[str] = frozenset()  # origins whose requests need CORS headers: those go through aiohttp

    def answer(self, request_headers: Any, rid: str) -> tuple[int, bytes]:
        cached = self.current()
        gz = "gzip" in request_headers.get("Accept-Encoding", "")
        etag = cached.etag_gzip if gz else cached.etag
        vary = b"Accept-Encoding, Origin" if self.cors and self.path.startswith("/v1/") else b"Accept-Encoding"
        head = [b"Cache-Control: ", self.cache_control.encode(), b"\r\nETag: ", etag.encode(),
                b"\r\nVary: ", vary, b"\r\nX-Request-Id: ", rid.encode(), b"\r\n"]
        for name, value in self.headers:
            head += [name.encode(), b": ", value.encode(), b"\r\n"]
        if matches(request_headers.get("If-None-Match", ""), etag):
            status, body = 304, b""
        else:
            status, body = 200, cached.gzipped if gz else cached.body
            head += [b"Content-Type: ", self.content_type.encode(), b"\r\n"]
            if gz:
                head.append(b"Content-Encoding: gzip\r\n")
        return status, b"".join((_STATUS_LINES[status], *head, b"Content-Length: ", str(len(body)).encode(),
                                 b"\r\nDate: ", _http_date(), b"\r\nServer: ", _SERVER, b"\r\n\r\n", body))


# path → route: its method for a FastRoute, GET for a FastGet
FAST_ROUTES = web.AppKey("fast_routes", dict[str, FastRoute | FastGet])

_SERVER = SERVER_SOFTWARE.encode()
_date_second = -1
_date = b""


def _http_date() -> bytes:
    """The Date header's value, formatted once a second (as aiohttp does)."""
    global _date_second, _date
    now = int(time.time())
    if now != _date_second:
        _date_second, _date = now, email.utils.formatdate(now, usegmt=True).encode()
    return _date


def _error_answer(route: FastRoute, rid: str, failure: Exception) -> tuple[bytes, int, bool]:
    """The error shape's whole response, its status, and whether the connection closes after it."""
    with structlog.contextvars.bound_contextvars(request_id=rid):
        err = api_error(failure, route.path, route.app)
    raw = response_bytes(err.status, error_body(err), rid, retry_after=err.retry_after, close=err.close,
                         extra=_vary(route))
    return raw, err.status, err.close


def _vary(route: FastRoute) -> bytes:
    """An API answer says `Vary: Origin` when origins are allowed (runtime/cors.py), whichever way it went."""
    return b"Vary: Origin\r\n" if route.cors else b""


@functools.cache
def _header_lines(headers: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}


def response_bytes(status: int, body: bytes, rid: str, *, retry_after: str | None = None,
                   close: bool = False, extra: bytes = b"") -> bytes:
    """The whole HTTP/1.1 response, headers as aiohttp writes them for web.Response(content_type=JSON);
    `extra`: more header lines, each ending in CRLF."""
    if retry_after is not None:
        extra += b"Retry-After: " + retry_after.encode() + b"\r\n"
    if close:
        extra += b"Connection: close\r\n"
    return b"".join((_STATUS_LINES[status], b"Content-Type: application/json\r\nX-Request-Id: ", rid.encode(),
                     b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\nDate: ", _http_date(),
                     b"\r\nServer: ", _SERVER, b"\r\n", extra, b"\r\n", body))


class FastPath(RequestHandler):
    """aiohttp's connection handler, answering its app's FastRoutes itself when it can (module doc)."""

    __slots__ = ("_fast_patterns", "_fast_routes", "_peer", "_pending")

    def __init__(self, *args: Any, fast_routes: dict[str, FastRoute | FastGet] | None = None,
                 fast_patterns: Patterns | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast_routes = fast_routes or {}
        self._fast_patterns = patterned(self._fast_routes) if fast_patterns is None else fast_patterns
        self._pending: asyncio.Future[Any] | None = None  # the store's reply a fast request waits for
        self._peer: str | None = None  # the client's address, read once per connection (as request.remote)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if (not self._fast_routes or self._force_close or self._close or self._payload_parser is not None
                or self._upgraded or parser is None):
            super().data_received(data)
            return
        # aiohttp's own data_received (3.14), but a message may be answered here instead of queued
        try:
            messages, upgraded, tail = parser.feed_data(data)
        except HttpProcessingError as exc:
            messages, upgraded, tail = [(_ErrInfo(status=400, exc=exc, message=exc.message), EMPTY_PAYLOAD)], False, b""
        for message, payload in messages:
            self._request_count += 1
            if self._answer_fast(message, payload):
                parser.message_consumed()  # as aiohttp's loop does for each message it takes
            else:
                self._messages.append((message, payload))
        self._wake()
        if not self._buffer_paused and len(self._messages) >= self._max_msg_queue_size:
            self._pause_reading_for_buffer()
        self._upgraded = upgraded
        if upgraded and tail:
            self._message_tail = tail

    def _wake(self) -> None:
        """aiohttp's loop takes the queued messages — once no fast answer is still to be written before them."""
        waiter = self._waiter
        if self._messages and self._pending is None and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _answer_fast(self, message: RawRequestMessage | _ErrInfo, payload: StreamReader) -> bool:
        """Answer `message` here if it is a FastRoute's and nothing stands in the way (module doc)."""
        if (self._pending is not None or self._messages or self._waiter is None or self._waiter.done()
                or not isinstance(message, RawRequestMessage) or message.method not in ("POST", "GET")
                or message.version != HttpVersion11 or message.should_close or message.upgrade
                or not payload.is_eof() or payload.total_bytes > MAX_BODY or "Expect" in message.headers):
            return False
        route = self._fast_routes.get(message.path)
        params: tuple[str, ...] = ()
        if route is None or (isinstance(route, FastRoute) and route.pattern is not None):  # not a template's text
            route = None
            for pattern, key in self._fast_patterns:
                if found := pattern.fullmatch(message.path):
                    route, params = self._fast_routes.get(key), found.groups()
                    break
        if route is None or (route.cors and message.headers.get("Origin") in route.cors):
            return False
        if isinstance(route, FastGet):
            return message.method == "GET" and self._answer_get(route, message)
        if message.method != route.method:
            return False
        started = time.monotonic()
        rid = request_id_of(message.headers)
        route.gate.count += 1
        # The request id bound while begin runs: a task it starts keeps it for its log lines. (Bound and reset by
        # hand: structlog's bound_contextvars, a generator context manager, cost ~20 µs a request here.)
        tokens = structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            if route.gate.over():
                raise route.gate.refusal(route.app)
            pending = route.begin(Call(message.headers, self._remote(), payload.read_nowait(-1), params))
        except Exception as exc:
            self._respond(route, rid, started, exc=exc)
            return True
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        self._pending = pending
        pending.add_done_callback(lambda done: self._respond(route, rid, started, reply=done))
        return True

    def _remote(self) -> str | None:
        if self._peer is None and self.transport is not None:
            peername = self.transport.get_extra_info("peername")
            self._peer = peername[0] if isinstance(peername, (list, tuple)) else None
        return self._peer

    def _answer_get(self, route: FastGet, message: RawRequestMessage) -> bool:
        """A FastGet's answer, written at once (nothing to wait for: it is in memory)."""
        started = time.monotonic()
        rid = request_id_of(message.headers)
        try:
            status, raw = route.answer(message.headers, rid)
        except Exception:  # not ready (the process is starting): aiohttp's route answers it
            return False
        request_latency(route.app, route.path).observe(time.monotonic() - started)
        requests_counted(route.app, route.path, status).inc()
        self._send(raw, close=False)
        return True

    def _respond(self, route: FastRoute, rid: str, started: float, *, reply: asyncio.Future[Any] | None = None,
                 exc: Exception | None = None) -> None:
        """Write the answer (the route's, or the error shape), count it, then let queued requests go.

        A failure is taken as it is, never raised again here: raised in this frame, its traceback would hold the
        frame, the frame the reply, the reply the failure — a cycle keeping each error's request (its body) alive
        until the collector's next pass, which runtime/collector.py makes rare."""
        route.gate.count -= 1
        failure: BaseException | None = exc  # begin failed (no reply), or the reply's own failure
        if reply is not None:
            self._pending = None
            failure = Unavailable("cancelled while waiting for the store") if reply.cancelled() else reply.exception()
        raw, status, close = b"", 0, False
        if failure is None:
            assert reply is not None
            try:
                status, body = route.finish(reply.result())  # a refusal is raised here (submission_answer)
                extra = _header_lines(route.headers) if route.headers and status < 300 else b""
                raw = response_bytes(status, body, rid, extra=extra + _vary(route))
            except Exception as refused:
                failure = refused
        if failure is not None:
            if not isinstance(failure, Exception):  # a BaseException (KeyboardInterrupt…) is not ours to answer
                raise failure
            raw, status, close = _error_answer(route, rid, failure)
        exc = failure = reply = None  # this frame may live on in a refusal's traceback: it holds nothing then
        log.debug("request", method=route.method, route=route.path, status=status, request_id=rid)
        request_latency(route.app, route.path).observe(time.monotonic() - started)
        requests_counted(route.app, route.path, status).inc()
        self._send(raw, close=close)

    def _send(self, raw: bytes, *, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away: its entry (if accepted) stands, a retry gets the receipt
        transport.write(raw)
        if close:
            self.force_close()
            return
        # what aiohttp's loop does after a kept-alive response: the idle timer starts again
        self._keepalive = True
        self._next_keepalive_close_time = close_time = self._loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None and self._keepalive_timeout:
            self._keepalive_handle = self._loop.call_at(close_time, self._process_keepalive)
        self._wake()

    def _process_keepalive(self) -> None:
        if self._pending is not None:  # a fast request is not idleness: look again a timeout later
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
            self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time, self._process_keepalive)
            return
        super()._process_keepalive()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        """A fast request still waiting for the store is answered before the connection closes."""
        pending = self._pending
        if pending is not None:
            with contextlib.suppress(Exception):  # its failure is its answer's business (TimeoutError included)
                await asyncio.wait_for(asyncio.shield(pending), timeout)
            await asyncio.sleep(0)  # its done-callback writes the answer
        await super().shutdown(timeout)
