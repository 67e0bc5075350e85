"""The desk's pages (placeholder while the JSON door is wired)."""

from __future__ import annotations

from aiohttp import web

from runtime.routes import Route


@web.middleware
async def pages_not_found(request: web.Request, handler: object) -> web.StreamResponse:
    return await handler(request)  # type: ignore[operator,no-any-return]


ROUTES: tuple[Route, ...] = ()
