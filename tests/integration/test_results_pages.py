"""The public results page, as the server sends it: every view at its URL, a closed period's winners in
the HTML itself, nothing fetched from elsewhere, names escaped, errors as pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from tests.harness import System, admin


class _Links(HTMLParser):
    """Every URL a page makes the browser fetch or follow, and its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action", "data-live-src") and value is not None:
                self.urls.append(value)
        if tag == "script":
            self.scripts.append(dict(attrs))


async def page(s: System, path: str, status: int = 200) -> str:
    answer = await s.results.get(path, allow_redirects=False)
    assert answer.status == status, (path, answer.status)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    html = await answer.text()
    links = _Links()
    links.feed(html)
    assert not [u for u in links.urls if re.match(r"^(https?:)?//", u)], path  # every asset and link is ours
    assert all(s.get("src", "").startswith("/static/") for s in links.scripts)  # no inline script
    return html


async def test_every_view_has_its_url_and_a_closed_period_shows_its_winners(system: System) -> None:
    s = system
    first, second = await s.register(full_name="Nguyễn Thị Hoa"), await s.register(full_name="Lê Văn Nam")
    await s.entry(first, 5, prediction=2)
    await s.entry(second, 3, prediction=2)
    await s.drain()
    overview = await page(s, "/")
    assert "Tuần 1" in overview and "Đang diễn ra" in overview and 'href="/periods/1"' in overview
    live = await page(s, "/periods/1")
    assert "Nguyễn Thị Hoa" in live and "Xếp hạng tạm thời" in live and 'data-live-src="/v1/periods/1/leaderboard' in live
    assert live.index("Nguyễn Thị Hoa") < live.index("Lê Văn Nam")
    await s.close(1)
    closed = await page(s, "/periods/1")
    winners = closed[closed.index("Danh sách đoạt giải"):closed.index("Bảng xếp hạng")]
    assert "Giải Nhất" in winners and "Nguyễn Thị Hoa" in winners and "Lê Văn Nam" in winners
    prizes = await s.ok("/v1/periods/1/prizes")
    assert prizes["results_digest"] in closed and "sha256" in closed and "data-live-src" not in closed
    assert "Đã chốt kết quả" in await page(s, "/")
    mine = await page(s, f"/periods/1/participants/{first}")
    assert "Nguyễn Thị Hoa" in mine and "Hạng chính thức" in mine
    answer = await s.results.get(f"/periods/1/participants?id={first}", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == f"/periods/1/participants/{first}"
    assert "công bố khi Ban Tổ chức chốt" in await page(s, "/final")
    await s.close(2)
    final = await page(s, "/final")
    assert "Sở A" in final and "Xếp hạng đơn vị toàn cuộc thi" in final
    report = await page(s, "/participation")
    assert all(u.name in report for u in s.contest.units.values())
    below = await page(s, "/participation?below=1")
    assert "Sở A" in below and "Huyện C" not in below  # C's kind has no target
    assert 'href="/participation?period=2&amp;below=1"' in below  # the scope links keep the filter
    assert "Sở A" in await page(s, "/participation?period=2")
    plain = await page(s, "/periods/1?group=nhan_dan")
    assert "Nhân dân" in plain and "Chưa có bài thi nào." in plain


async def test_names_are_escaped_and_refusals_are_pages(system: System) -> None:
    s = system
    pid = await s.register()
    await s.entry(pid, 5)
    await s.drain()
    async with s.clients.pool.connection() as conn:  # as if a name had slipped past registration's rules
        await conn.execute("UPDATE participants SET display_name = %s", ('<script>alert("x")</script>',))
    html = await page(s, "/periods/1")
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" in html
    assert "Không tìm thấy" in await page(s, "/periods/9", 404)
    await page(s, "/periods/1?page=0", 422)
    await page(s, "/periods/1?group=nobody", 422)
    await page(s, "/periods/1/participants/nobody", 404)
    await page(s, "/periods/1/participants/a%00b", 404)  # PostgreSQL's text holds no NUL: no such id (make fuzz)
    assert (await s.results.get("/v1/periods/1/participants/a%00b")).status == 404
    await page(s, "/periods/1/participants?id=", 422)
    await page(s, "/participation?period=x", 422)
    await page(s, "/participation?below=yes", 422)
    await page(s, "/no/such/page", 404)
    await page(s, "/periods/1/participants/%7Bid%7D", 404)  # no route matches braces: still a page
    assert (await s.results.get("/v1/no/such")).headers["Content-Type"].startswith("application/json")
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": pid, "reason": "x"}, headers=admin())
    assert status == 202


async def test_assets_are_served_by_the_app(system: System) -> None:
    s = system
    for name, kind in (("style.css", "text/css"), ("app.js", "text/javascript")):
        answer = await s.results.get(f"/static/{name}")
        assert answer.status == 200 and answer.headers["Content-Type"].startswith(kind)
        assert "http://" not in await answer.text() and "https://" not in await answer.text()
    assert (await s.results.get("/static/nothing.js")).status == 404
    assert (await s.results.get("/static/..%2Fpages.py")).status == 404


FROZEN = "Bảng xếp hạng đã đóng băng lúc 07:00"  # week 1 ends at 08:00, the last 60 minutes frozen


async def test_every_frozen_view_says_since_when(system: System) -> None:
    s = system
    pid = await s.register(unit_code="A")
    await s.entry(pid, 4)
    await s.drain()
    views = ("/periods/1", f"/periods/1/participants/{pid}", "/participation", "/participation?period=1")
    assert not [v for v in views if FROZEN in await page(s, v)]
    freeze = s.contest.frozen_at(s.contest.periods[0])
    assert freeze is not None
    s.clock.ms = freeze + 1
    assert not [v for v in views if FROZEN not in await page(s, v)]
    assert FROZEN not in await page(s, "/periods/2")
    board = await page(s, "/periods/1")
    assert "cập nhật liên tục" not in board and "data-frozen" in board
    await s.close(1)
    assert not [v for v in views if FROZEN in await page(s, v)]


async def test_pages_pass_the_overload_gate_as_the_api_does(system: System) -> None:
    """A few clients looping over heavy pages cannot take every connection: past the app's limit of requests
    in flight a page answers 503 (a page, with Retry-After) at once, as /v1/ does; health and assets pass."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from ops.wiring import build_results
    from results import app as results_app
    from runtime.web import GATE

    s = system
    res = build_results(s.contest, s.clients, s.clock, rank_cache_s=None)
    held = asyncio.Event()
    real = res.live.participants_per_unit

    async def slow(*args: Any) -> Any:
        await held.wait()
        return await real(*args)

    res.live.participants_per_unit = slow  # type: ignore[method-assign]
    app = results_app.build_app(res)
    app[GATE].limit = 1
    async with TestClient(TestServer(app)) as results:
        busy = asyncio.create_task(results.get("/participation"))
        await asyncio.sleep(0.2)
        refused = await results.get("/periods/1")
        assert refused.status == 503 and refused.headers["Retry-After"]
        assert refused.headers["Content-Type"].startswith("text/html") and "Tạm thời gián đoạn" in await refused.text()
        assert (await results.get("/v1/periods")).status == 503
        assert (await results.get("/healthz")).status == 200
        assert (await results.get("/static/style.css")).status == 200
        held.set()
        assert (await busy).status == 200
        assert (await results.get("/periods/1")).status == 200
