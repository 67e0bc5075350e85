"""One route table per app: it feeds both the aiohttp router and the OpenAPI document, so neither
can drift from the other. Also the routes every process serves: health, readiness, OpenAPI — and
/metrics, only on a process's metrics port (DESIGN §3: the live counts are not for the public)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from runtime import metrics
from runtime.errors import Unavailable
from runtime.openapi import openapi_document
from runtime.web import RETRY_AFTER_SECONDS, ApiError, json_response, whole_number

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A path or query parameter, with its JSON schema."""

    name: str
    where: Literal["path", "query", "header"]
    schema: dict[str, Any]
    description: str


PERIOD = Param("n", "path", {"type": "integer", "minimum": 1}, "the period's number (ASCII digits)")
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
                        "a key of the client's choosing: a retry with the same key and body within 24 h gets the first"
                        " answer again and changes nothing (DESIGN §5.7)")
PERIOD_QUERY = Param("period", "query", {"type": "integer", "minimum": 1},
                     "one period's number (default: the whole contest)")


@dataclass(frozen=True)
class Route:
    """One operation: how aiohttp reaches it and what it answers (msgspec types, or None)."""

    method: Literal["get", "post"]
    path: str
    handler: Handler
    summary: str
    status: int
    response: Any = None
    request: Any = None
    errors: tuple[int, ...] = ()  # besides those the builder adds (body, bearer, overload)
    also: tuple[int, ...] = ()  # other success statuses with the same body (a repeat's 200)
    params: tuple[Param, ...] = ()
    bearer: bool = False  # needs Authorization: Bearer <token>
    content_type: str = "application/json"
    body_required: bool = True  # False: the request body may be left out (its defaults apply)
    errors_as: str | None = None  # its refusals' content type when not its own (a page's download: HTML pages)

    def error_statuses(self) -> list[int]:
        """Every error status the route can answer: its own, a body's (400/413/422), a bearer's
        (401) and, on the /v1 API, overload or a server down (503)."""
        codes = set(self.errors)
        if self.request is not None:
            codes |= {400, 413, 422}
        if self.bearer:
            codes.add(401)
        if self.path.startswith("/v1/"):
            codes.add(503)
        return sorted(codes)


class Status(msgspec.Struct, omit_defaults=True):
    status: str
    # A process reading from a PostgreSQL replica (CCHC_DATABASE_READ_URL): how far behind it is.
    replica_staleness_s: float | None = None


APP_ROUTES = web.AppKey("routes", tuple[Route, ...])


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    """Register `routes` with the router; /openapi.json describes exactly what was registered."""
    for r in routes:
        app.router.add_route(r.method.upper(), r.path, r.handler)
    app[APP_ROUTES] = (*app.get(APP_ROUTES, ()), *routes)


def path_values_checked() -> Any:
    """A middleware (one per app, innermost): a page's path values against the schema its route declares
    (integer bounds, string lengths, enums; the JSON API's handlers answer their own codes, `unknown_period`…),
    and no path value of any route holding a NUL (no id holds one; PostgreSQL's text cannot), before the handler
    or a session check runs — 404 to anyone otherwise, a page's HTML 404 where the app renders one."""
    declared: dict[tuple[str, str], dict[str, dict[str, Any]]] | None = None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal declared
        if declared is None:  # the app's routes, once they are all added
            declared = {(r.method.upper(), r.path): {p.name: p.schema for p in r.params if p.where == "path"}
                        for r in request.app.get(APP_ROUTES, ()) if not r.path.startswith("/v1/")}
        resource = request.match_info.route.resource
        schemas = declared.get((request.method, resource.canonical), {}) if resource is not None else {}
        for name, raw in request.match_info.items():
            if "\x00" in raw or (name in schemas and not fits(schemas[name], raw)):
                raise web.HTTPNotFound()
        return await handler(request)

    return middleware


def fits(schema: dict[str, Any], raw: str) -> bool:
    """A path value against the small part of JSON Schema the routes declare (integer bounds, string lengths,
    enums)."""
    if schema.get("type") == "integer":
        value = whole_number(raw, 2**31)
        return value is not None and int(schema.get("minimum", value)) <= value <= int(schema.get("maximum", value))
    if "enum" in schema:
        return raw in schema["enum"]
    return bool(int(schema.get("minLength", 0)) <= len(raw) <= int(schema.get("maxLength", len(raw))))


def common_routes(title: str, ready: Callable[[web.Request], Awaitable[float | None]], *,
                  metrics_port: bool = False) -> list[Route]:
    """/healthz (alive), /readyz (its servers reachable; `ready` answers the staleness of a read replica,
    or None) and /openapi.json; with `metrics_port` (an app on the process's metrics port, never a
    public one) /metrics too."""

    async def healthz(_: web.Request) -> web.Response:
        return json_response(Status("alive"))

    async def readyz(request: web.Request) -> web.Response:
        try:
            staleness = await ready(request)
        except Unavailable as e:
            raise ApiError(503, "unavailable", str(e), retry_after=RETRY_AFTER_SECONDS) from e
        return json_response(Status("ready", None if staleness is None else round(staleness, 3)))

    async def metrics_view(_: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def openapi_view(request: web.Request) -> web.Response:
        routes: tuple[Route, ...] = request.app[APP_ROUTES]
        return json_response(openapi_document(title, routes))

    routes = [Route("get", "/healthz", healthz, "the process is alive", 200, Status),
              Route("get", "/readyz", readyz, "the servers this process needs are reachable", 200, Status,
                    errors=(503,)),
              Route("get", "/openapi.json", openapi_view, "this document", 200)]
    if metrics_port:
        routes.append(Route("get", "/metrics", metrics_view, "Prometheus metrics of this process", 200,
                            content_type="text/plain"))
    return routes
