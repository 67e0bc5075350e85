"""The desk's pages through HTTP (DESIGN §6b): sign-in and its limits, the session cookie, CSRF on every change,
every page of a contest with a closed period, and each action's page leading to its event."""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import ip_network
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient, TestServer

from admin.routes import DOOR
from ops.wiring import build_desk, build_desk_app
from tests.harness import ADMIN, SETTINGS, System, admin

INSECURE = replace(SETTINGS, desk_insecure=True)  # the test client speaks plain HTTP


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


async def sign_in(client: TestClient, name: str = "admin", token: str = ADMIN, *, via: str | None = None) -> Any:
    """The sign-in form filled and sent (`via`: the client's address, as a trusted proxy forwards it)."""
    forwarded = {"X-Forwarded-For": via} if via else {}
    form = await client.get("/dang-nhap", headers=forwarded)
    html = await form.text()
    pre = form.cookies["cchc_desk_signin"].value  # sent back by hand: a Secure cookie would not go over HTTP
    return await client.post("/dang-nhap", data={"csrf": csrf_of(html), "name": name, "token": token, "next": "/"},
                             headers={"Cookie": f"cchc_desk_signin={pre}", **forwarded}, allow_redirects=False)


async def desk_client(s: System, settings: Any = INSECURE) -> TestClient:
    door = await build_desk(s.contest, s.clients, settings, s.clock)
    door.committee.closer.settle_ms, door.committee.closer.drain_timeout_s = 1000, 2.0
    door.committee.closer.read_paths.memo_s = 0
    client = TestClient(TestServer(build_desk_app(door, settings)))
    await client.start_server()
    return client


async def test_sign_in_sets_a_strict_cookie_and_pages_need_it(system: System) -> None:
    s = system
    client = await desk_client(s, SETTINGS)  # Secure, as in production
    try:
        assert (await client.get("/", allow_redirects=False)).headers["Location"].startswith("/dang-nhap")
        answer = await sign_in(client)
        assert answer.status == 303
        cookie = next(v for v in answer.headers.getall("Set-Cookie") if v.startswith("cchc_desk="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie and "Path=/" in cookie
        assert "Max-Age" not in cookie and "expires" not in cookie.lower()  # a session cookie; the server expires it
        value = cookie.split(";")[0].split("=", 1)[1]
        keys = [k.decode() async for k in s.clients.redis.scan_iter(match="*desk*session*")]
        assert keys and value not in " ".join(keys)  # kept on the server under a hash of the cookie
        assert 1700 < await s.clients.redis.ttl(keys[0]) <= 1800  # 30 idle minutes
    finally:
        await client.close()


async def test_five_failures_in_a_minute_then_429_until_the_oldest_is_a_minute_old(system: System) -> None:
    s = system
    client = await desk_client(s)
    try:
        for _ in range(5):
            assert (await sign_in(client, token="x" * 40)).status == 401
        refused = await sign_in(client)  # even the right token
        assert refused.status == 429 and int(refused.headers["Retry-After"]) <= 60
        assert "thử lại sau" in await refused.text()
        s.clock.advance(61)
        assert (await sign_in(client)).status == 303
        assert (await sign_in(client, name="someone else")).status == 401  # the name must be the token's
    finally:
        await client.close()


async def test_failed_sign_ins_count_an_ipv6_client_by_its_whole_64_network(system: System) -> None:
    client = await desk_client(system, replace(INSECURE, trusted_proxies=(ip_network("127.0.0.0/8"),)))
    try:
        for n in range(5):
            assert (await sign_in(client, token="x" * 40, via=f"2001:db8:1:2::{n + 1}")).status == 401
        assert (await sign_in(client, via="2001:db8:1:2:ffff::9")).status == 429  # the same /64: the same client
        assert (await sign_in(client, via="2001:db8:1:3::1")).status == 303  # the next /64: another
    finally:
        await client.close()


async def test_a_change_without_its_csrf_token_is_403_and_changes_nothing(system: System) -> None:
    s = system
    pid = await s.register()
    client = await desk_client(s)
    try:
        assert (await sign_in(client)).status == 303
        length = await s.stream_length()
        for data in ({"participant_id": pid, "reason": "gian lận", "back": "/"},
                     {"participant_id": pid, "reason": "gian lận", "back": "/", "csrf": "wrong"}):
            answer = await client.post("/loai", data=data, allow_redirects=False)
            assert answer.status == 403 and "CSRF" in await answer.text()
        answer = await client.post(f"/tra-cuu/{pid}/don-vi", data={"unit": "B", "reason": "sai đơn vị"})
        assert answer.status == 403
        answer = await client.post("/dang-xuat", allow_redirects=False)
        assert answer.status == 403
        assert await s.stream_length() == length
        # the JSON door with a session: the token in a header
        answer = await client.post("/v1/admin/disqualifications", json={"participant_id": pid, "reason": "x"})
        assert answer.status == 403
        assert await s.stream_length() == length
    finally:
        await client.close()


async def test_every_page_of_a_closed_period_and_each_action(system: System) -> None:
    s = system
    people = [await s.register(unit_code="A") for _ in range(4)]
    for n, pid in enumerate(people):
        await s.entry(pid, 5 - n, prediction=10 + n)
    client = await desk_client(s)
    try:
        assert (await sign_in(client)).status == 303
        home = await client.get("/")
        html = await home.text()
        assert home.status == 200 and "Tổng quan" in html and "Máy chấm" in html
        assert home.headers["Content-Security-Policy"].startswith("default-src 'self'")
        csrf = csrf_of(html)
        s.clock.ms = s.contest.periods[0].end_ms + 5000
        await s.drain()
        period = await (await client.get("/ky/1")).text()
        assert "Chốt kết quả" in period and "Dẫn đầu tạm thời" in period
        for kind in ("Quá nhanh", "Cùng địa chỉ", "Bài giống nhau"):
            assert kind in period
        # disqualify the last one through its confirmation page
        form = await (await client.get(f"/loai?nguoi={people[3]}&ve=/ky/1")).text()
        assert "Lý do" in form and "Xác nhận" in form
        done = await client.post("/loai", data={"csrf": csrf, "participant_id": people[3], "reason": "thi hộ",
                                                "back": "/ky/1"}, allow_redirects=False)
        assert done.status == 303 and done.headers["Location"] == "/ky/1?thong-bao=disqualified"
        await s.drain()
        # close, with progress
        assert "Xác nhận" in await (await client.get("/ky/1/chot")).text()
        started = await client.post("/ky/1/chot", data={"csrf": csrf, "reason": ""}, allow_redirects=False)
        assert started.status == 303 and started.headers["Location"] == "/ky/1/tien-trinh"
        job = client.server.app[DOOR].committee.jobs[1]
        assert job.task is not None
        await job.task
        assert job.phase == "done", job.error
        page = await client.get("/ky/1/tien-trinh", allow_redirects=False)
        assert page.status == 303 and "thong-bao=closed" in page.headers["Location"]
        closed = await (await client.get(page.headers["Location"])).text()
        assert "Phiên bản 1" in closed and job.result is not None and job.result.results_digest in closed
        assert "Đã chốt kết quả." in closed
        # correct a key: the impact first, then the recompute and its changes
        question = next(iter(s.contest.questions))
        key = s.contest.questions[question].answer
        other = "ABCD"[("ABCD".index(key) + 1) % 4]
        preview = await client.get(f"/cau-hoi/{question}?dap-an={other}")
        text = await preview.text()
        assert preview.status == 200 and "Bài hợp lệ đổi điểm" in text and "Xác nhận" in text
        corrected = await client.post(f"/cau-hoi/{question}", data={"csrf": csrf, "answer": other, "reason": "đáp án"
                                                                    " in sai"}, allow_redirects=False)
        assert corrected.status == 303
        await s.drain()
        refused = await client.post("/ky/1/tinh-lai", data={"csrf": csrf, "reason": " "})
        assert refused.status == 422 and "Hãy ghi lý do" in await refused.text()
        again = await client.post("/ky/1/tinh-lai", data={"csrf": csrf, "reason": "sửa đáp án"}, allow_redirects=False)
        assert again.status == 303
        job = client.server.app[DOOR].committee.jobs[1]
        assert job.task is not None
        await job.task
        assert job.phase == "done", job.error
        recomputed = await (await client.get("/ky/1")).text()
        assert "Phiên bản 2" in recomputed and "Thay đổi từ Phiên bản 1 đến Phiên bản 2" in recomputed
        # the hotline: by id, then a unit move and a new key
        found = await client.post("/tra-cuu", data={"csrf": csrf, "query": people[0], "reason": ""},
                                  allow_redirects=False)
        assert found.status == 303 and found.headers["Location"] == f"/tra-cuu/{quote(people[0], safe='')}"
        file = await (await client.get(found.headers["Location"])).text()
        assert "Đổi đơn vị" in file and "Cấp lại mã" in file and "được tính" in file
        moved = await client.post(f"/tra-cuu/{people[0]}/don-vi", data={"csrf": csrf, "unit": "Sở B (B)",
                                                                         "reason": "đăng ký nhầm"},
                                  allow_redirects=False)
        assert moved.status == 303, await moved.text()
        key_page = await client.post(f"/tra-cuu/{people[0]}/ma", data={"csrf": csrf, "reason": "mất mã"})
        assert key_page.status == 201 and "Mã truy cập mới" in await key_page.text()
        assert key_page.headers["Cache-Control"] == "no-store"
        # erasure on request (issue 24's service): a reason first, then the page says it is done
        unsaid = await client.post(f"/tra-cuu/{people[1]}/xoa", data={"csrf": csrf, "reason": ""})
        assert unsaid.status == 422 and "Hãy ghi lý do" in await unsaid.text()
        erased = await client.post(f"/tra-cuu/{people[1]}/xoa", data={"csrf": csrf, "reason": "đơn số 12, 3/5"},
                                   allow_redirects=False)
        assert erased.status == 303 and erased.headers["Location"].endswith("?thong-bao=erased")
        await s.drain()
        gone = await (await client.get(erased.headers["Location"])).text()
        assert "Đã xoá dữ liệu cá nhân" in gone and "đã bị xoá theo đề nghị" in gone and "Cấp lại mã" not in gone
        for path in ("/cau-hoi", "/cau-hoi?ky=1", "/tra-cuu", "/tham-gia", "/tham-gia?ky=1", "/xuat", "/nhat-ky",
                     "/ky/2", "/ky/1/co/copied_entry", "/xuat/ky/1/ca-nhan"):
            answer = await client.get(path)
            assert answer.status == 200, (path, await answer.text())
        reminders = await client.get("/tham-gia/A/nhac-nho.csv")
        assert reminders.status == 200 and reminders.headers["Content-Type"].startswith("text/csv")
        for path in ("/ky/9", "/cau-hoi/nope", "/tra-cuu/nobody", "/xuat/ky-9.xlsx", "/khong-co"):
            assert (await client.get(path)).status == 404, path
        await s.drain()  # the audit reads the event table: what the scorers have archived
        audit = await (await client.get("/nhat-ky")).text()
        for what in ("Loại người dự thi", "Sửa đáp án", "Chốt / tính lại kết quả", "Đổi đơn vị", "Cấp lại mã truy cập",
                     "Xoá dữ liệu cá nhân"):
            assert what in audit, what
        out = await client.post("/dang-xuat", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303
        assert (await client.get("/", allow_redirects=False)).status == 303  # the session ended on the server
    finally:
        await client.close()


async def test_malformed_path_values_and_forms_are_refused_before_the_sign_in(system: System) -> None:
    """A period 0, an id past 64 characters or an unknown kind of flag is 404 to anyone (not a redirect to the
    sign-in); a form that cannot be read (multipart without its boundary) is 422, never 500 (found by make fuzz)."""
    s = system
    client = await desk_client(s)
    try:
        for path in ("/ky/0", "/ky/1/co/AAA", "/ky/0/chot", "/tra-cuu/" + "0" * 65, "/cau-hoi/" + "0" * 65,
                     "/ky/%D9%A1"):  # ١, an Arabic-Indic digit
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 404, path
        for path in ("/ky/0/chot", "/tra-cuu/" + "0" * 65 + "/ma", "/cau-hoi/" + "0" * 65):
            answer = await client.post(path, allow_redirects=False)  # the page its route documents (make fuzz)
            assert answer.status == 404 and answer.headers["Content-Type"].startswith("text/html"), path
        assert (await client.get("/ky/1", allow_redirects=False)).status == 303  # a well-formed one: sign in first
        await sign_in(client)
        for path in ("/tra-cuu/a%00b", "/cau-hoi/a%00b"):  # no id holds a NUL (PostgreSQL's text cannot): 404, not 500
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 404 and answer.headers["Content-Type"].startswith("text/html"), path
        assert (await client.get("/v1/admin/participants/a%00b", headers=admin())).status == 404
        broken = await client.post("/dang-nhap", data=b"x", headers={"Content-Type": "multipart/form-data"})
        assert broken.status == 422
    finally:
        await client.close()
