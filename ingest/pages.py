"""The participant's quiz page (DESIGN §6a): Vietnamese HTML rendered on the server with Jinja2, one small
script (static/quiz.js) that calls the ingest API, one stylesheet — as the results page does.

Every view has its own URL: `/` the contest and the way in, `/dang-ky` registration, `/dang-nhap` sign-in
and a lost key, `/thi` the attempt, `/tai-khoan` the participant's data. Nothing in a page depends on who
asks: a page is rendered once per change of the periods' statuses and kept in memory with its gzip form
and ETag (runtime/cached.py); the assets carry their content's hash in their name and are cached for a
year. So the ingest process that times the submissions spends a dictionary look-up on a page view.

What is personal (the access key, the attempt with its answers, the receipt) lives in the browser's
storage and travels only in the bodies and Authorization headers of API calls, never in a URL."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from contest.model import Contest
from ingest.contest_view import ContestView, Statuses, contest_out
from runtime.cached import Cached, answer
from runtime.fastpath import FastGet
from runtime.routes import Param, Route

# Nothing is fetched from anywhere but this app: the browser is told so, and holds the page to it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                               " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
HTML = "text/html; charset=utf-8"
PAGE_CACHE = "no-cache"  # revalidated on every visit: a 304 of a few bytes while nothing changed
ASSET_CACHE = "public, max-age=31536000, immutable"  # its name changes with its content
SELECTION = {"best": "bài có kết quả tốt nhất được tính", "first": "bài nộp đầu tiên được tính",
             "last": "bài nộp sau cùng được tính"}
STATUS_NAMES = {"upcoming": "Sắp diễn ra", "open": "Đang diễn ra", "closing": "Đang chốt kết quả",
                "closed": "Đã chốt kết quả"}


@dataclass(frozen=True)
class Asset:
    name: str  # with its content's hash: quiz.3f2a1b0c.js
    cached: Cached
    content_type: str


def _assets() -> dict[str, Asset]:
    """Every file of static/, under its plain name and under its hashed one."""
    found: dict[str, Asset] = {}
    for f in resources.files("ingest").joinpath("static").iterdir():
        stem, dot, ext = f.name.rpartition(".")
        if "." + ext not in STATIC_TYPES:
            continue
        body = f.read_bytes()
        asset = Asset(f"{stem}.{hashlib.sha256(body).hexdigest()[:10]}.{ext}", Cached(body), STATIC_TYPES[dot + ext])
        found[f.name] = found[asset.name] = asset
    return found


ASSETS = _assets()


def _when(iso: str) -> str:
    """`2022-08-22T08:00:00.000+07:00` → `08:00 ngày 22/08/2022` (the contest's own time)."""
    return datetime.fromisoformat(iso).strftime("%H:%M ngày %d/%m/%Y")


def _minutes(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} phút" + (f" {rest} giây" if rest else "")


_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def notice_html(text: str) -> Markup:
    """The privacy notice (a contest folder's Markdown file) as HTML: headings (its title left to the page),
    paragraphs, lists, bold and code — all it needs; everything else is text, escaped."""
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def inline(s: str) -> str:
        return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<strong>\1</strong>", html.escape(s)))

    def flush() -> None:
        if paragraph:
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line)
        if not line:
            flush()
        elif heading:
            flush()
            if len(heading.group(1)) > 1:  # the notice's title: the page gives it its own heading
                level = min(len(heading.group(1)) + 1, 4)
                out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line.startswith(("- ", "* ")):
            if paragraph:
                flush()
            items.append(line[2:])
        elif items and raw.startswith((" ", "\t")):
            items[-1] += " " + line
        else:
            if items:
                flush()
            paragraph.append(line)
    flush()
    return Markup("".join(out))  # built from escaped text only


TEMPLATES = Environment(loader=PackageLoader("ingest", "templates"), autoescape=select_autoescape(["html"]),
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters.update(when=_when, minutes=_minutes, status_name=STATUS_NAMES.get,
                         number=lambda n: f"{n:,}".replace(",", "."))
TEMPLATES.globals.update(asset=lambda name: f"/static/{ASSETS[name].name}")

VIEWS = {"/": ("home.html", "Trang chủ"), "/dang-ky": ("register.html", "Đăng ký"),
         "/dang-nhap": ("signin.html", "Đăng nhập"), "/thi": ("attempt.html", "Làm bài"),
         "/tai-khoan": ("account.html", "Tài khoản")}


class Pages:
    """The rendered views, one set per tuple of period statuses."""

    def __init__(self, contest: Contest, view: ContestView, results_url: str) -> None:
        self.contest = contest
        self.view = view
        self.results_url = results_url
        self._rendered: dict[tuple[str, Statuses], Cached] = {}

    def render(self, path: str, statuses: Statuses) -> Cached:
        key = (path, statuses)
        cached = self._rendered.get(key)
        if cached is None:
            cached = self._rendered[key] = Cached(self._html(path, statuses).encode())
        return cached

    def render_now(self, path: str) -> Cached:
        return self.render(path, self.view.statuses_now())

    def _html(self, path: str, statuses: Statuses) -> str:
        contest, (template, title) = self.contest, VIEWS[path]
        summary = contest_out(contest, statuses)
        periods = summary.periods
        current = next((p for p in periods if p.status == "open"), None)
        upcoming = next((p for p in periods if p.status == "upcoming"), None)
        privacy = contest.privacy
        return TEMPLATES.get_template(template).render(
            contest=contest, summary=summary, rules=contest.rules, path=path, title=title, periods=periods,
            current=current, upcoming=upcoming, selection=SELECTION[contest.rules.attempt_selection],
            notice=notice_html(privacy.notice) if privacy else None, privacy=privacy,
            first_day=contest.first_start().date().isoformat(), results_url=self.results_url,
            store=f"cchc:{contest.slug}:")


def fast_gets(pages_of: Callable[[], Pages], app: str, cors: frozenset[str]) -> dict[str, FastGet]:
    """The views, the hashed assets and GET /v1/contest answered straight from the connection (the same
    answers as their routes below, which serve whatever the fast path leaves: a query string, HTTP/1.0, a
    CORS request)."""
    security = tuple(SECURITY_HEADERS.items())

    def view(path: str) -> Callable[[], Cached]:
        return lambda: pages_of().render_now(path)

    def fixed(cached: Cached) -> Callable[[], Cached]:
        return lambda: cached

    gets = {path: FastGet(path, view(path), HTML, PAGE_CACHE, app, security) for path in VIEWS}
    gets["/v1/contest"] = FastGet("/v1/contest", lambda: (v := pages_of().view).answer(v.statuses_now()),
                                  "application/json", "no-cache", app, cors=cors)
    for name, asset in ASSETS.items():
        if name == asset.name:
            path = f"/static/{name}"
            gets[path] = FastGet(path, fixed(asset.cached), asset.content_type, ASSET_CACHE, app,
                                 (("X-Content-Type-Options", "nosniff"),))
    return gets


def routes(pages_of: Callable[[web.Request], Pages]) -> Iterator[Route]:
    """The quiz page's routes; `pages_of` finds the process's Pages from a request."""

    def view(path: str, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def page(request: web.Request) -> web.Response:
            pages = pages_of(request)
            return answer(request, pages.render(path, await pages.view.statuses()), HTML, PAGE_CACHE,
                          SECURITY_HEADERS)

        page.__name__ = name  # the OpenAPI operation's id
        return page

    async def static(request: web.Request) -> web.Response:
        asset = ASSETS.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        hashed = request.match_info["name"] == asset.name
        return answer(request, asset.cached, asset.content_type, ASSET_CACHE if hashed else "public, max-age=300",
                      {"X-Content-Type-Options": "nosniff"})

    for path, (template, title) in VIEWS.items():
        yield Route("get", path, view(path, "quiz_" + template.removesuffix(".html")), f"the quiz page: {title}", 200,
                    content_type="text/html")
    yield Route("get", "/static/{name}", static, "the quiz page's own assets (no CDN), cached for a year", 200,
                errors=(404,), content_type="text/css",
                params=(Param("name", "path", {"type": "string"}, "an asset of the page"),))
