"""CORS for the API (DESIGN §6, CCHC_ALLOWED_ORIGINS): a province's own front-end on another origin may call
it from a browser; every other origin gets no CORS header at all, so its browser keeps the answers from it.

Only `/v1/` is shared. A preflight from an allowed origin is answered here (204); the request itself goes
on to its handler and leaves with the origin allowed and the headers a front-end needs to read exposed
(`Date` to correct its countdown for the device's clock, `Retry-After` to back off). Answers to /v1/
say `Vary: Origin` when origins are configured, so a shared cache never hands one origin's answer to another.
A submission with an allowed Origin goes through aiohttp, not the fast path (runtime/fastpath.py)."""

from __future__ import annotations

from aiohttp import web

from runtime.web import Handler

ALLOW_METHODS = "GET, POST"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSE_HEADERS = "Date, Retry-After, X-Request-Id"
PREFLIGHT_MAX_AGE = "600"  # seconds a browser may keep a preflight's answer


def _vary_origin(response: web.StreamResponse) -> None:
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"


def cors_middleware(origins: frozenset[str]) -> object:
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is None or origin not in origins:
            response = await handler(request)
            _vary_origin(response)
            return response
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin"})
        response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        _vary_origin(response)
        return response

    return cors
