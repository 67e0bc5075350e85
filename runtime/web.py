"""HTTP plumbing shared by the apps: one JSON error shape, body decoding, health and metrics routes."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import structlog
from aiohttp import web
from multidict import CIMultiDictProxy

from contest.model import Contest, Period
from runtime import metrics
from runtime.errors import Unavailable

T = TypeVar("T")
MAX_BODY = 64 * 1024
RETRY_AFTER_SECONDS = "2"
_encoder = msgspec.json.Encoder()
log = structlog.get_logger()

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 422: "invalid", 429: "too_many_requests", 503: "unavailable"}


class ApiError(Exception):
    """An answer with the one error shape {"error": {"code", "message"}}."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: str | None = None,
                 close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.close = close  # the connection cannot be reused (a body left half-read)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def error_body(err: ApiError) -> bytes:
    return _encoder.encode({"error": {"code": err.code, "message": err.message}})


def error_response(err: ApiError) -> web.Response:
    response = web.Response(body=error_body(err), status=err.status, content_type="application/json")
    if err.retry_after is not None:
        response.headers["Retry-After"] = err.retry_after
    if err.close:
        response.force_close()
    return response


BODY_TIMEOUT = web.AppKey("body_timeout_s", float)  # CCHC_BODY_TIMEOUT: the whole body within this of the start
STARTED = web.RequestKey("started", float)  # time.monotonic() when its handling began (its headers had arrived)


async def read_body(request: web.Request) -> bytes:
    """The whole body, or 408 when it has not arrived within the app's body timeout of the request's
    start (a slow client gains no time) or 413 past MAX_BODY."""
    try:
        if request.content.is_eof():  # the usual case: the body came with the headers, no timer needed
            return await request.read()
        started = request.get(STARTED, time.monotonic())
        async with asyncio.timeout(started + request.app.get(BODY_TIMEOUT, 10.0) - time.monotonic()):
            return await request.read()
    except TimeoutError as e:
        raise ApiError(408, "request_timeout", "the body did not arrive in time; nothing was recorded",
                       close=True) from e
    except web.HTTPRequestEntityTooLarge as e:
        raise ApiError(413, "too_large", f"body over {MAX_BODY // 1024} KiB", close=True) from e


async def decode_body(request: web.Request, kind: type[T]) -> T:
    """The request body as `kind`: 408 late, 413 too big, 400 not JSON (or not UTF-8), 422 against the schema."""
    return decode_json(await read_body(request), kind)


def decode_json(raw: bytes, kind: type[T]) -> T:
    """`raw` as `kind`, or ApiError: 400 not JSON (or not UTF-8), 422 against the schema."""
    if b"\\u0000" in raw:  # valid JSON, but no PostgreSQL text column can hold it
        raise ApiError(422, "invalid", "strings must not contain the NUL character (\\u0000)")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as e:
        raise ApiError(422, "invalid", str(e)) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # invalid UTF-8 inside a string is the latter
        raise ApiError(400, "malformed_json", f"not JSON in UTF-8: {e}") from e


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


@dataclass(frozen=True, slots=True)
class Call:
    """What a route's own logic reads of its request, the same whether aiohttp parsed it (call_of) or the
    connection answers it itself (runtime/fastpath.py): the headers, the peer's address, the whole body.
    client_address and bearer_token take it as they take a web.Request."""

    headers: CIMultiDictProxy[str]
    remote: str | None
    body: bytes = b""
    params: tuple[str, ...] = ()  # a patterned fast route's path values, in order


async def call_of(request: web.Request) -> Call:
    """`request` as a Call, its body read (read_body's 408 and 413)."""
    return Call(request.headers, request.remote, await read_body(request))


def client_address(request: web.Request | Call, trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The peer's address, or, when the peer is one of our proxies, the right-most X-Forwarded-For
    address that is not (DESIGN §6): what a client writes further left is not to be believed."""
    peer = request.remote or ""
    if not _within(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    for hop in reversed(hops):
        if not _within(hop, trusted_proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address should be: count the proxy's own
    return peer


def limited_client(address: str) -> str:
    """What a per-address limit counts as one client: an IPv4 address as it is; an IPv6 one by its /64
    network, since one host (one home router, one phone's carrier) is handed a whole /64 and could
    otherwise spend a fresh budget on each of its 2^64 addresses; an IPv4 address written as IPv6
    (`::ffff:a.b.c.d`) as that IPv4. Anything not an address is left as it is."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # a scope (fe80::1%eth0) names no other client
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def bearer_token(request: web.Request | Call) -> str | None:
    """The token of `Authorization: Bearer <token>`, if the header says so."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


APP_NAME = web.AppKey("app_name", str)


@functools.cache
def request_latency(app: str, route: str) -> Any:
    """The labelled child, looked up once per (app, route) instead of on every request."""
    return metrics.REQUEST_SECONDS.labels(app, route)


@functools.cache
def requests_counted(app: str, route: str, status: int) -> Any:
    return metrics.REQUESTS.labels(app, route, str(status))


_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_REQUEST_ID_PREFIX = secrets.token_hex(8)  # this process's; a counter after it keeps the ids unique
_request_numbers = itertools.count()


def request_id_of(headers: Mapping[str, str]) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one (32 hex digits: unique, not
    secret, so a process prefix and a counter instead of a uuid4's urandom call per request)."""
    given = headers.get("X-Request-Id", "")
    if 0 < len(given) <= 64 and set(given) <= _REQUEST_ID_OK:
        return given
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


class Gate:
    """DESIGN §5.5's overload guard: the requests in flight in a process, refused past `limit` (0: never)."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.count = 0

    def over(self) -> bool:
        return 0 < self.limit < self.count

    def refusal(self, app: str) -> ApiError:
        metrics.OVERLOAD_REFUSED.labels(app).inc()
        return ApiError(503, "unavailable", "overloaded; retry shortly", retry_after=RETRY_AFTER_SECONDS)


GATE = web.AppKey("gate", Gate)  # an app's gate, for handlers that answer a refusal their own way (pages)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_middleware(gate: Gate | None = None) -> Any:
    """The one middleware of every app (one instead of three: each layer costs a coroutine a request):
    - every failure leaves as the JSON error shape, never a stack trace or a bare 5xx page;
    - every log line of the request carries its request id (echoed in X-Request-Id);
    - latency and status counted per route;
    - with a `gate` that has a limit, beyond that many concurrent requests /v1/ answers 503 at once
      (Retry-After) instead of queueing without bound (DESIGN §5.5); health and metrics always pass.
    (runtime/fastpath.py does the same for the requests it answers itself.)"""
    gate = gate or Gate()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_name(request)
        app = request.app.get(APP_NAME, "app")
        rid = request_id_of(request.headers)
        structlog.contextvars.bind_contextvars(request_id=rid)
        request[STARTED] = started = time.monotonic()  # the loop's clock (read_body's deadline)
        gate.count += 1
        try:
            try:
                if gate.over() and request.path.startswith("/v1/"):
                    raise gate.refusal(app)
                response = await handler(request)
            except web.HTTPException as exc:
                response = _http_error(exc)
            except Exception as exc:
                response = error_response(api_error(exc, route, app))
            response.headers["X-Request-Id"] = rid
            request_latency(app, route).observe(time.monotonic() - started)
            requests_counted(app, route, response.status).inc()
            log.debug("request", method=request.method, route=route, status=response.status)
            return response
        finally:
            gate.count -= 1
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


def _http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, wrong method, body too large) in the one error shape; a redirect re-raised."""
    if exc.status < 400:
        raise exc
    response = error_response(ApiError(exc.status, _STATUS_CODES.get(exc.status, "error"), exc.reason))
    if "Allow" in exc.headers:  # a 405 says which methods the path has (RFC 9110)
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def api_error(exc: Exception, route: str, app: str) -> ApiError:
    """The answer to what a handler raised: itself if an ApiError, 503 when a store is unavailable, else
    500 with the failure logged (a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Unavailable):
        metrics.STORE_UNAVAILABLE.labels(app).inc()
        log.warning("store_unavailable", route=route, error=str(exc))
        return ApiError(503, "unavailable", "a server behind this service is unavailable; retry shortly",
                        retry_after=RETRY_AFTER_SECONDS)
    log.exception("unhandled", route=route, exc_info=exc)
    return ApiError(500, "internal", "internal error; it has been logged")


def whole_number(raw: str, cap: int) -> int | None:
    """`raw` as a whole number when it is ASCII digits (else None), at most `cap`: a number of any length
    is read without int() on the whole string (Python refuses more than 4,300 digits: a 500)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0") or "0"
    return cap if len(digits) > len(str(cap)) else min(int(digits), cap)


def _shown(raw: str) -> str:
    """A client's value for a message: at most 40 characters of it."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


def period_in_path(request: web.Request, contest: Contest) -> Period:
    """The `{n}` of the path as one of the contest's periods, else 404 unknown_period."""
    return period_named(request.match_info["n"], contest)


def period_named(raw: str, contest: Contest) -> Period:
    """A path's period number as one of the contest's periods, else 404 unknown_period."""
    number = whole_number(raw, 2**31)
    period = None if number is None else contest.period(number)
    if period is None:
        raise ApiError(404, "unknown_period", f"no period {_shown(raw)} in this contest")
    return period


def period_in_query(request: web.Request, contest: Contest) -> Period | None:
    """The `period` query parameter as one of the contest's periods (absent: None); not ASCII digits →
    422 invalid, no such period (of any length) → 404 unknown_period."""
    raw = request.query.get("period")
    if raw is None:
        return None
    number = whole_number(raw, 2**31)
    if number is None:
        raise ApiError(422, "invalid", "period: must be a period number (ASCII digits)")
    period = contest.period(number)
    if period is None:
        raise ApiError(404, "unknown_period", f"no period {_shown(raw)} in this contest")
    return period
