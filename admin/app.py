"""The committee's desk app (DESIGN §6b, `cchc desk`, port 8082): the admin JSON routes (admin/routes.py)
and the desk's pages (admin/pages.py) on one port of their own, so that a close, a recompute or an export
never runs on the event loop that times submissions (ingest answers 404 to every /v1/admin/ path)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import pages, routes
from admin.routes import DOOR, Door
from runtime.routes import add_routes, common_routes, path_values_checked
from runtime.web import APP_NAME, BODY_TIMEOUT, GATE, MAX_BODY, Gate, api_middleware

MAX_IN_FLIGHT = 256  # a handful of organisers and their scripts; beyond it, refused at once (503)


async def _ready(request: web.Request) -> float | None:
    return await request.app[DOOR].ready()


def build_app(door: Door | None, *, extra_ctx: list[Any] | None = None, body_timeout_s: float = 10.0
              ) -> web.Application:
    """The app; `door` may be None when a startup context in `extra_ctx` provides it."""
    gate = Gate(MAX_IN_FLIGHT)
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[api_middleware(gate), pages.pages_not_found, path_values_checked()])
    app[APP_NAME] = "desk"
    app[GATE] = gate
    app[BODY_TIMEOUT] = body_timeout_s
    if door is not None:
        app[DOOR] = door
    add_routes(app, [*routes.ROUTES, *pages.ROUTES, *common_routes("cchc-scoring desk", _ready)])
    for ctx in extra_ctx or []:
        app.cleanup_ctx.append(ctx)
    return app
