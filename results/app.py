"""The results app: the read-only JSON API and the public results page, on one port."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from results import api, pages
from results.api import RESULTS, Results
from runtime.fastpath import FAST_ROUTES
from runtime.routes import add_routes, common_routes, path_values_checked
from runtime.web import APP_NAME, GATE, Gate, api_middleware

MAX_IN_FLIGHT = 2048  # per process; beyond it requests are refused at once (503) rather than queued


async def _ready(request: web.Request) -> float | None:
    return await request.app[RESULTS].ready()


def build_app(results: Results | None, *, extra_ctx: list[Any] | None = None) -> web.Application:
    """The app; `results` may be None when a startup context in `extra_ctx` provides it."""
    gate = Gate(MAX_IN_FLIGHT)  # /v1/ refused by the middleware, the pages by pages.page: one count for both
    app = web.Application(middlewares=[api_middleware(gate), pages.pages_not_found, path_values_checked()])
    app[APP_NAME] = "results"
    app[GATE] = gate
    app[FAST_ROUTES] = api.fast_routes(lambda: app[RESULTS], gate)
    if results is not None:
        app[RESULTS] = results
    add_routes(app, [*api.ROUTES, *pages.ROUTES, *common_routes("cchc-scoring results", _ready)])
    for ctx in extra_ctx or []:
        app.cleanup_ctx.append(ctx)
    return app
