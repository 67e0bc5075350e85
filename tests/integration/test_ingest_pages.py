"""The quiz page's side of ingest (DESIGN §6, §6a): GET /v1/contest (from memory, with an ETag, each period's
status, "closed" as the committee's close records it in Redis), the pages and their assets (cached, gzipped,
a strict CSP), consent in registration, answers for one participant kept by no cache, and CORS for a province's
own front-end (CCHC_ALLOWED_ORIGINS: an allowed origin gets its headers, preflight included; another none; a
submission from an allowed origin answered through aiohttp with the same receipt)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import msgspec
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest, Privacy
from ingest.app import INGEST
from ingest.pages import ASSETS, notice_html
from tests.harness import SETTINGS, System
from tests.integration.test_ingest_errors import refused

ORIGIN = "https://thi.example.gov.vn"
VIEWS = ("/", "/dang-ky", "/dang-nhap", "/thi", "/tai-khoan")
NOTICE = "# Thông báo\n\nDữ liệu của bạn được **mã hoá**.\n\n- một\n- hai <b>\n"


@asynccontextmanager
async def running(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool, **settings: Any
                  ) -> AsyncIterator[System]:
    await redis.flushall()
    async with System.running(contest, redis, pool, replace(SETTINGS, **settings)) as s:
        yield s


async def fresh(s: System) -> None:
    """The closed set is read again now (it is shared for a second)."""
    app = s.ingest.app
    assert app is not None
    app[INGEST].view.forget()
    await app[INGEST].view.statuses()


def with_privacy(contest: Contest) -> Contest:
    return msgspec.structs.replace(contest, privacy=Privacy("2030-01-01", "Văn phòng UBND tỉnh", NOTICE, 90))


async def test_the_contest_summary_is_cacheable_and_says_each_periods_status(system: System) -> None:
    s = system
    answer = await s.ingest.get("/v1/contest", headers={"Accept-Encoding": "identity"})
    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-cache"
    body = await answer.json()
    assert body["slug"] == "test" and body["rehearsal"] is False and body["privacy"] is None
    assert [p["status"] for p in body["periods"]] == ["open", "upcoming"]
    assert body["rules"]["questions_per_attempt"] == 5 and body["rules"]["time_limit_seconds"] == 1200
    assert {g["code"]: g["needs_unit"] for g in body["groups"]} == {"cbccvc": True, "nhan_dan": False}
    assert {u["code"] for u in body["units"]} == set(s.contest.units)
    etag = answer.headers["ETag"]
    again = await s.ingest.get("/v1/contest", headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status == 304 and await again.read() == b""
    zipped = await s.ingest.get("/v1/contest", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["ETag"] != etag
    assert msgspec.json.decode(gzip.decompress(await zipped.read())) == body


async def test_a_period_shows_closed_once_the_committee_closes_it(system: System) -> None:
    s = system
    first = await (await s.ingest.get("/v1/contest")).json()
    s.clock.ms = s.contest.periods[0].end_ms + 10  # ended, not yet closed
    await fresh(s)
    assert [p["status"] for p in (await (await s.ingest.get("/v1/contest")).json())["periods"]] == ["closing", "open"]
    await s.close(1)
    await fresh(s)
    answer = await s.ingest.get("/v1/contest")
    assert [p["status"] for p in (await answer.json())["periods"]] == ["closed", "open"]
    assert first["periods"][0]["status"] == "open"


async def test_every_view_is_a_page_from_memory_with_a_strict_policy(system: System) -> None:
    s = system
    for path in VIEWS:
        answer = await s.ingest.get(path)
        page = await answer.text()
        assert answer.status == 200 and answer.content_type == "text/html", path
        assert answer.headers["Cache-Control"] == "no-cache" and answer.headers["ETag"]
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        assert '<html lang="vi">' in page and "<script>" not in page and "style=" not in page
        again = await s.ingest.get(path, headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status == 304
    home = await (await s.ingest.get("/")).text()
    assert ">Đăng ký</a>" in home and ">Đăng nhập</a>" in home and "Tuần 1 đang diễn ra" in home
    register = await (await s.ingest.get("/dang-ky")).text()
    for label in ("Họ và tên", "Số CCCD", "Số điện thoại", "Ngày sinh", "Đối tượng", "Cơ quan, đơn vị"):
        assert f">{label}</" in register, label
    assert "Tôi đồng ý" not in register  # a contest without [privacy] asks no consent
    attempt = await (await s.ingest.get("/thi")).text()
    assert "Bắt đầu làm bài" in attempt and ">Nộp bài</button>" in attempt and 'role="timer"' in attempt


async def test_the_fast_path_and_aiohttp_answer_a_page_alike(system: System) -> None:
    """A view, an asset and the summary are answered from the connection (runtime/fastpath.py FastGet); with a
    query string they go through aiohttp's routes: the same bytes, the same ETag, the same headers."""
    s = system
    for path in ("/thi", f"/static/{ASSETS['quiz.js'].name}", "/v1/contest"):
        for encoding in ("gzip", "identity"):
            fast = await s.ingest.get(path, headers={"Accept-Encoding": encoding}, auto_decompress=False)
            slow = await s.ingest.get(path + "?via=aiohttp", headers={"Accept-Encoding": encoding},
                                      auto_decompress=False)
            assert fast.status == slow.status == 200 and await fast.read() == await slow.read(), path
            for header in ("ETag", "Cache-Control", "Content-Type", "Vary", "Content-Security-Policy"):
                assert fast.headers.get(header) == slow.headers.get(header), (path, header)
            assert fast.headers.get("Content-Encoding") == slow.headers.get("Content-Encoding")
            again = await s.ingest.get(path, headers={"Accept-Encoding": encoding, "If-None-Match": fast.headers["ETag"]})
            assert again.status == 304 and again.headers["ETag"] == fast.headers["ETag"]


async def test_assets_carry_their_hash_and_are_cached_for_a_year(system: System) -> None:
    s = system
    page = await (await s.ingest.get("/")).text()
    for name in ("quiz.js", "quiz.css"):
        hashed = ASSETS[name].name
        assert f"/static/{hashed}" in page
        answer = await s.ingest.get(f"/static/{hashed}")
        assert answer.status == 200 and "immutable" in answer.headers["Cache-Control"]
        assert await answer.read() == ASSETS[name].cached.body
    assert (await s.ingest.get("/static/quiz.0000000000.js")).status == 404
    assert (await s.ingest.get("/static/..%2Fapp.py")).status == 404


async def test_consent_is_asked_with_the_notice_of_the_contest(contest: Contest, redis: aioredis.Redis,
                                                              pool: AsyncConnectionPool) -> None:
    async with running(with_privacy(contest), redis, pool) as s:
        body = await (await s.ingest.get("/v1/contest")).json()
        assert body["privacy"] == {"version": "2030-01-01", "controller": "Văn phòng UBND tỉnh", "notice": NOTICE}
        for consent in (None, {"version": "2029-12-31"}):
            error = await refused(s, "/v1/participants", s.person(consent=consent), 422, "invalid")
            assert error["message"].startswith("consent")
        await s.register(consent={"version": "2030-01-01"})
        page = await (await s.ingest.get("/dang-ky")).text()
        assert "Tôi đồng ý với thông báo xử lý dữ liệu cá nhân" in page
        assert "<strong>mã hoá</strong>" in page and "&lt;b&gt;" in page and "<li>một</li>" in page


def test_the_notice_is_escaped_text_with_a_few_marks() -> None:
    assert str(notice_html("# Thông báo\n## Tiêu đề\nmột <script>\ndòng **đậm** `[privacy]`")) == (
        "<h3>Tiêu đề</h3><p>một &lt;script&gt; dòng <strong>đậm</strong> <code>[privacy]</code></p>")


async def test_answers_for_one_participant_are_kept_by_no_cache(system: System) -> None:
    s = system
    pid = await s.register()
    await s.start(pid)
    for path in ("/v1/attempts/current", "/v1/participants/me"):
        answer = await s.ingest.get(path, headers=s.auth(pid))
        assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store", path


async def test_cors_for_an_allowed_origin_and_none_for_another(contest: Contest, redis: aioredis.Redis,
                                                              pool: AsyncConnectionPool) -> None:
    async with running(contest, redis, pool, allowed_origins=(ORIGIN,)) as s:
        preflight = await s.ingest.options("/v1/attempts", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key"} <= allowed
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        stranger = await s.ingest.options("/v1/attempts", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in stranger.headers
        pid = await s.register()
        start = await s.ingest.post("/v1/attempts", json={"participant_id": pid},
                                    headers={"Origin": ORIGIN, **s.auth(pid)})
        assert start.status == 201 and start.headers["Access-Control-Allow-Origin"] == ORIGIN
        exposed = {h.strip() for h in start.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Date", "Retry-After"} <= exposed and "Origin" in start.headers["Vary"]
        attempt = await start.json()
        body = {"token": attempt["token"], "answers": s.answers(attempt, 3), "prediction": 7}
        sent = await s.ingest.post("/v1/submissions", json=body, headers={"Origin": ORIGIN})  # through aiohttp
        assert sent.status == 202 and sent.headers["Access-Control-Allow-Origin"] == ORIGIN
        repeat = await s.ingest.post("/v1/submissions", json=body, headers={"Origin": "https://evil.example"})
        assert repeat.status == 200 and "Access-Control-Allow-Origin" not in repeat.headers  # the fast path
        assert await repeat.json() == await sent.json()
        refused_one = await s.ingest.get("/v1/participants/me", headers={"Origin": ORIGIN})
        assert refused_one.status == 401 and refused_one.headers["Access-Control-Allow-Origin"] == ORIGIN
        page = await s.ingest.get("/", headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in page.headers  # the pages are not shared, only /v1/
        for answer in (stranger, repeat):
            assert not any(h.startswith("Access-Control-") for h in answer.headers)
        # Every /v1/ answer says Vary: Origin, also those answered from the connection (runtime/fastpath.py)
        current = await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))
        contest = await s.ingest.get("/v1/contest")
        stranger_start = await s.ingest.post("/v1/attempts", json={"participant_id": pid},
                                             headers={"Origin": "https://evil.example"})  # 401: no key
        for answer in (repeat, current, contest, stranger_start):
            assert "Origin" in answer.headers.get("Vary", ""), answer.url
        assert "Origin" not in page.headers.get("Vary", "")


async def test_without_allowed_origins_nobody_gets_cors_headers(system: System) -> None:
    s = system
    answer = await s.ingest.get("/v1/contest", headers={"Origin": ORIGIN})
    assert answer.status == 200 and not any(h.startswith("Access-Control-") for h in answer.headers)


async def test_the_quiz_pages_flow_with_idempotency_keys(contest: Contest, redis: aioredis.Redis,
                                                         pool: AsyncConnectionPool) -> None:
    """What the page does on a flaky connection: every write sent again with its Idempotency-Key (a lost
    answer), the start resumed from /v1/attempts/current, the submission repeated: one participant, one
    attempt spent, one entry."""
    async with running(with_privacy(contest), redis, pool) as s:
        person = s.person(consent={"version": "2030-01-01"})
        key = {"Idempotency-Key": "page-registration-0001"}
        first = await s.post("/v1/participants", person, headers=key)
        again = await s.post("/v1/participants", person, headers=key)
        assert first == again and first[0] == 201
        pid, access = first[1]["participant_id"], first[1]["access_key"]
        auth = {"Authorization": f"Bearer {access}"}
        start = {"Idempotency-Key": "page-start-000000001", **auth}
        started = await s.post("/v1/attempts", {"participant_id": pid}, headers=start)
        assert started == await s.post("/v1/attempts", {"participant_id": pid}, headers=start)
        current = await s.ingest.get("/v1/attempts/current", headers=auth)
        assert (await current.json())["attempt_id"] == started[1]["attempt_id"]
        body = {"token": started[1]["token"], "answers": s.answers(started[1], 2), "prediction": 0}
        receipts = [await s.post("/v1/submissions", body) for _ in range(3)]
        assert [r[0] for r in receipts] == [202, 200, 200] and len({str(r[1]) for r in receipts}) == 1
        me = await (await s.ingest.get("/v1/participants/me", headers=auth)).json()
        assert me["consent"]["version"] == "2030-01-01"
        assert [(p["attempts_started"], len(p["receipts"])) for p in me["periods"]] == [(1, 1), (0, 0)]
        gone = await s.ingest.get("/v1/attempts/current", headers=auth)
        assert gone.status == 404 and (await gone.json())["error"]["code"] == "no_open_attempt"
