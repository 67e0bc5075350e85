"""The public results page (DESIGN §6): Vietnamese HTML rendered on the server from the results API's own
answers (Jinja2), every view at its own URL, a closed period's winners readable without scripts; a little
JavaScript (static/app.js) only adds countdowns and the live refresh of an open period's leaderboard.

Why server-side templates and not a single-page app: contest networks are often closed and phones modest —
the winners must be in the HTML the server sends, with no build step and no CDN; every asset is served here.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from contest.model import Period
from results.api import (
    RESULTS,
    Results,
    final_view,
    group_of,
    leaderboard_view,
    participant_view,
    participation_view,
    period_out,
    periods_view,
    prizes_view,
    units_view,
)
from runtime.errors import Unavailable
from runtime.routes import PERIOD, Param, Route
from runtime.web import APP_NAME, GATE, ApiError, period_in_path, period_in_query, whole_number

PAGE_SIZE = 50
STATUS_NAMES = {"upcoming": "Sắp diễn ra", "open": "Đang diễn ra", "closing": "Đang chốt kết quả",
                "closed": "Đã chốt kết quả"}
# Nothing is fetched from anywhere but this app: the browser is told so, and holds the page to it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                               " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}


def _when(iso: str) -> str:
    """`2022-08-22T08:00:00.000+07:00` → `08:00 22/08/2022` (the contest's own time)."""
    return datetime.fromisoformat(iso).strftime("%H:%M %d/%m/%Y")


def _clock(iso: str) -> str:
    """`2022-08-29T07:00:00.000+07:00` → `07:00` (the contest's own time)."""
    return datetime.fromisoformat(iso).strftime("%H:%M")


def _day(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%d/%m/%Y")


def _duration(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60} phút {seconds % 60:02d} giây" if seconds >= 60 else f"{ms / 1000:.1f} giây".replace(".", ",")


def _percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{digits}f} %".replace(".", ",")


def _number(value: float | int) -> str:
    """Vietnamese digit grouping: 1.234.567; decimals with a comma."""
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return f"{value:,.6f}".rstrip("0").rstrip(".").replace(",", " ").replace(".", ",").replace(" ", ".")


TEMPLATES = Environment(loader=PackageLoader("results", "templates"), autoescape=select_autoescape(["html"]),
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters.update(when=_when, clock=_clock, day=_day, duration=_duration, percent=_percent, number=_number,
                         status_name=STATUS_NAMES.get, quote=lambda s: quote(str(s), safe=""))
STATIC = {f.name: (f.read_bytes(), STATIC_TYPES[f.name[f.name.rindex("."):]])
          for f in resources.files("results").joinpath("static").iterdir() if f.name[f.name.rfind("."):]
          in STATIC_TYPES}


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    res = request.app[RESULTS]
    html = TEMPLATES.get_template(template).render(contest=res.contest, path=request.path, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: Page) -> Page:
    """Refusals and outages as pages too (the API answers them as JSON): a visitor reads what happened.
    A page passes the app's overload gate as the API does (DESIGN §5.5): a few clients looping over the
    heavy pages cannot hold every connection of the pool."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        gate = request.app.get(GATE)
        try:
            if gate is not None and gate.over():
                raise Unavailable(str(gate.refusal(request.app.get(APP_NAME, "app"))))
            return await handler(request)
        except ApiError as e:
            return _render(request, "error.html", e.status, title="Không tìm thấy" if e.status == 404 else "Lỗi",
                           message=e.message, code=e.code)
        except Unavailable:
            response = _render(request, "error.html", 503, title="Tạm thời gián đoạn", code="unavailable",
                               message="Hệ thống đang bận hoặc gián đoạn; vui lòng thử lại sau ít phút.")
            response.headers["Retry-After"] = "5"
            return response

    return wrapped


API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/")


@web.middleware
async def pages_not_found(request: web.Request, handler: Page) -> web.StreamResponse:
    """A path the router does not know, outside the API, is answered with a page as well (a mistyped
    address or an id no route matches); the API keeps its JSON error."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(API_PREFIXES) or request.method != "GET":
            raise
        return _render(request, "error.html", 404, title="Không tìm thấy", code="not_found",
                       message="Không có trang nào ở địa chỉ này.")


def _res(request: web.Request) -> Results:
    return request.app[RESULTS]


@page
async def overview(request: web.Request) -> web.Response:
    res = _res(request)
    return _render(request, "overview.html", title="Kết quả", periods=(await periods_view(res)).periods)


def _page_number(request: web.Request) -> int:
    number = whole_number(request.query.get("page", "1"), 1_000_001)
    if number is None or not 1 <= number <= 1_000_000:
        raise ApiError(422, "invalid", "page: must be a page number")
    return number


@page
async def period_page(request: web.Request) -> web.Response:
    res = _res(request)
    period = period_in_path(request, res.contest)
    group = group_of(res, request.query.get("group"))
    number = _page_number(request)
    board = await leaderboard_view(res, period, group, PAGE_SIZE, (number - 1) * PAGE_SIZE)
    status = period_out(res, period, board.final)  # the board already knows whether it is closed
    prizes = await prizes_view(res, period) if board.final else None
    pages = max(1, -(-board.total // PAGE_SIZE))
    live_src = None if board.final else (f"/v1/periods/{period.number}/leaderboard?"
                                         + urlencode({"group": group, "limit": PAGE_SIZE,
                                                      "offset": (number - 1) * PAGE_SIZE}))
    return _render(request, "period.html", title=period.name, period=status, board=board,
                   units=(await units_view(res, period)).entries, prizes=prizes, page=number, pages=pages,
                   group=res.contest.group(group), live_src=live_src, base=request.url.origin())


@page
async def participant_lookup(request: web.Request) -> web.Response:
    """The lookup form's target: on to the participant's own URL."""
    res = _res(request)
    period = period_in_path(request, res.contest)
    wanted = request.query.get("id", "").strip()
    if not wanted or len(wanted) > 64:
        raise ApiError(422, "invalid", "Hãy nhập mã người dự thi (tối đa 64 ký tự).")
    target = f"/periods/{period.number}/participants/{quote(wanted, safe='')}"
    return web.Response(status=303, headers={"Location": target, **SECURITY_HEADERS}, content_type="text/html",
                        text=f'<!doctype html><html lang="vi"><a href="{target}">Xem kết quả</a></html>')


@page
async def participant_page(request: web.Request) -> web.Response:
    res = _res(request)
    period = period_in_path(request, res.contest)
    view = await participant_view(res, period, request.match_info["id"])
    return _render(request, "participant.html", title="Kết quả của người dự thi", period=period, view=view)


@page
async def final_page(request: web.Request) -> web.Response:
    res = _res(request)
    try:
        final = await final_view(res)
    except ApiError as e:
        if e.code != "not_closed":
            raise
        final = None
    return _render(request, "final.html", title="Giải tập thể chung cuộc", final=final)


@page
async def participation_page(request: web.Request) -> web.Response:
    res = _res(request)
    period: Period | None = period_in_query(request, res.contest)
    raw = request.query.get("below")
    if raw not in (None, "1"):
        raise ApiError(422, "invalid", "below: 1, or leave it out")
    below = raw == "1"
    report = await participation_view(res, period)
    units = [u for u in report.units if u.below_target] if below else report.units
    return _render(request, "participation.html", title="Tỷ lệ tham gia", report=report, units=units,
                   below=below, selected=period)


async def static(request: web.Request) -> web.Response:
    found = STATIC.get(request.match_info["name"])
    if found is None:
        raise ApiError(404, "not_found", "no such file")
    body, content_type = found
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "public, max-age=3600",
                                            "X-Content-Type-Options": "nosniff"})


_GROUP = Param("group", "query", {"type": "string"}, "the group's code (default: the contest's first group)")
_PAGE = Param("page", "query", {"type": "integer", "minimum": 1}, "the leaderboard's page (50 rows each)")
_ID = Param("id", "query", {"type": "string"}, "the participant's id")
_PARTICIPANT = Param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "the participant's id")
_PERIOD_QUERY = Param("period", "query", {"type": "integer", "minimum": 1}, "one period (default: the whole contest)")
_BELOW = Param("below", "query", {"type": "string", "enum": ["1"]}, "only the units below their target")
_NAME = Param("name", "path", {"type": "string"}, "an asset of the page")
HTML = "text/html"

ROUTES = (
    Route("get", "/", overview, "the results page: every period, its status and countdown", 200, errors=(503,),
          content_type=HTML),
    Route("get", "/periods/{n}", period_page, "a period's page: leaderboard per group, units, prizes and digest", 200,
          errors=(404, 422, 503), params=(PERIOD, _GROUP, _PAGE), content_type=HTML),
    Route("get", "/periods/{n}/participants", participant_lookup, "the lookup form: on to a participant's page", 303,
          errors=(404, 422, 503), params=(PERIOD, _ID), content_type=HTML),
    Route("get", "/periods/{n}/participants/{id}", participant_page, "a participant's standing in a period", 200,
          errors=(404, 422, 503), params=(PERIOD, _PARTICIPANT), content_type=HTML),
    Route("get", "/final", final_page, "the final unit prizes and ranking", 200, errors=(503,), content_type=HTML),
    Route("get", "/participation", participation_page, "participation per unit against its target, as a chart",
          200, errors=(404, 422, 503), params=(_PERIOD_QUERY, _BELOW), content_type=HTML),
    Route("get", "/static/{name}", static, "the page's own assets (no CDN)", 200, errors=(404,), params=(_NAME,),
          content_type="text/css"),
)
