"""The committee's desk in a real browser (Debian's Chromium driven by Playwright) against a live stack, as an
organiser uses it: sign in (a wrong token refused), review a flagged entry and disqualify it, close a period and
see the prizes and the digest, correct a key (its impact before, the recompute's changes after), look a
participant up by CCCD and move them to another unit, reissue a key, download the Excel export and open it,
the audit, sign out, five failed sign-ins → 429; a change without its CSRF token → 403, nothing changed; the
cookie's flags. Screenshots of every view, desktop and phone, in test-output/browser/desk-*.png.

Run by `make browser-test`; not part of `make test`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from ops.demo import Simulation
from ops.embedded import free_port
from ops.stack import Stack
from ops.wiring import contest_of
from runtime.settings import REPO_CONTESTS, Settings
from tests.paths import ROOT

pytestmark = pytest.mark.browser
OUT = ROOT / "test-output" / "browser"
CHROMIUM = __import__("os").environ.get("CCHC_CHROMIUM", "/usr/bin/chromium")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
FIRST_WEEK_S = 25


@dataclass
class Desk:
    url: str  # http://localhost:PORT: a browser keeps a Secure cookie there without HTTPS
    token: str
    contest: Any
    people: list[dict[str, Any]]
    workdir: Path


def _contest(workdir: Path) -> Path:
    """The demo contest with two weeks from now (a short one to review and close, a long one still open) and a
    plausibility floor of 2 s, so that the simulation's quick answers are flagged Quá nhanh."""
    target = workdir / "contest"
    shutil.copytree(REPO_CONTESTS / "demo", target)
    toml = target / "contest.toml"
    text = toml.read_text()
    now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).replace(microsecond=0)
    edges = [now + timedelta(seconds=s) for s in (8, 8 + FIRST_WEEK_S, 8 + FIRST_WEEK_S + 3600)]
    weeks = "".join(f'[[periods]]\nname = "Tuần {n}"\nstart = {a.isoformat()}\nend = {b.isoformat()}\n\n'
                    for n, (a, b) in enumerate(pairwise(edges), start=1))
    text = text.replace("freeze_minutes = 0", "freeze_minutes = 0\nmin_plausible_seconds = 2")
    toml.write_text(text[:text.index("[schedule]")] + weeks + text[text.index("[[groups]]"):])
    return target


@pytest.fixture(scope="module")
def desk() -> Iterator[Desk]:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-desk-browser-"))
    settings = Settings(contest_dir=_contest(workdir), data_dir=workdir / "data", ingest_port=free_port(),
                        results_port=free_port(), desk_port=free_port(), log_level="warning", address_limit=0)
    stack = Stack(settings, scorers=1, secure_desk=True)
    try:
        running = stack.start()
        contest = contest_of(running)
        sim = Simulation(contest, f"http://{running.host}:{running.ingest_port}",
                         f"http://{running.host}:{running.results_port}", running.admin_token or "", people=30,
                         desk=f"http://{running.host}:{running.desk_port}")

        async def first_week() -> list[dict[str, Any]]:
            import aiohttp

            async with aiohttp.ClientSession() as http:
                people = await sim.register_all(http)
                week = contest.periods[0]
                await asyncio.sleep(max(0.0, (week.start_ms - time.time() * 1000) / 1000))
                await asyncio.gather(*(sim.play(http, p, week.end_ms) for p in people))
            return people

        people = asyncio.run(first_week())
        time.sleep(max(0.0, contest.periods[0].end_ms / 1000 - time.time()) + 1)  # week 1 ends: to close
        yield Desk(f"http://localhost:{running.desk_port}", running.admin_token or "", contest, people, workdir)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(desk: Desk) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Organiser:
    """One browser context signed in at the desk; every page it opens is checked and photographed."""

    def __init__(self, browser: Any, desk: Desk, screen: dict[str, Any] = DESKTOP) -> None:
        self.desk = desk
        self.screen = screen
        self.context = browser.new_context(locale="vi-VN", accept_downloads=True, **screen)
        self.page = self.context.new_page()
        self.fetched: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.fetched.append(r.url))
        # A refused sign-in is a page with its 4xx status, which Chromium logs as a failed load: not a problem.
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error"
                     and not m.text.startswith("Failed to load resource: the server responded with a status of 4")
                     else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def check(self, shot: str) -> Any:
        """What every view must hold: Vietnamese, nothing fetched from elsewhere, no script or CSP error, no
        sideways scrolling; then a full-page screenshot."""
        page = self.page
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == "vi"
        assert all(u.startswith(self.desk.url) for u in self.fetched), self.fetched
        assert not self.problems, self.problems
        width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert width <= 1, f"{page.url} scrolls sideways by {width}px"
        page.screenshot(path=str(OUT / f"desk-{shot}-{'phone' if self.screen is PHONE else 'desktop'}.png"),
                        full_page=True)
        return page

    def go(self, path: str, shot: str) -> Any:
        self.page.goto(self.desk.url + path)
        return self.check(shot)

    def sign_in(self, name: str, token: str) -> Any:
        page = self.page
        page.goto(self.desk.url + "/dang-nhap")
        page.get_by_label("Tên").fill(name)
        page.get_by_label("Mã").fill(token)
        with page.expect_navigation():
            page.get_by_role("button", name="Đăng nhập").click()
        return page


def nav(page: Any, name: str) -> Any:
    """A link of the desk's navigation."""
    return page.get_by_role("navigation", name="Các trang của bàn làm việc").get_by_role("link", name=name, exact=True)


def _wait_for(page: Any, text: str, timeout_s: float = 90) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)


def test_an_organiser_runs_a_week_from_the_desk(browser: Any, desk: Desk) -> None:
    me = Organiser(browser, desk)
    page = me.page
    # sign in: a wrong token first, by keyboard
    page.goto(desk.url + "/")
    assert page.url.startswith(desk.url + "/dang-nhap")
    me.check("01-sign-in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").startswith("Bỏ qua")
    page.get_by_label("Tên").focus()
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type("sai-" + desk.token)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_text("Tên hoặc mã không đúng.").first.is_visible()
    assert page.get_by_label("Mã").get_attribute("aria-invalid") == "true"
    me.check("02-sign-in-refused")
    me.sign_in("admin", desk.token)
    assert page.get_by_role("heading", name="Tổng quan").is_visible()
    cookie = next(c for c in me.context.cookies() if c["name"] == "cchc_desk")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"] and cookie["expires"] == -1
    me.check("03-overview")

    # week 1 has ended: review a flagged entry and disqualify it
    page.get_by_role("link", name="Tuần 1", exact=True).first.click()
    me.check("04-period-before-close")
    assert page.get_by_role("heading", name=re.compile("^Quá nhanh")).is_visible()
    assert page.get_by_role("heading", name=re.compile("^Cùng địa chỉ")).is_visible()
    assert page.get_by_role("heading", name=re.compile("^Bài giống nhau")).is_visible()
    fast = page.locator("#co-too_fast + .case, #co-too_fast ~ .case").first
    cheat = fast.locator("tbody th a").first.inner_text()
    fast.get_by_role("link", name=re.compile("^Loại")).first.click()
    me.check("05-disqualify-confirm")
    page.get_by_label("Lý do").fill("Nộp bài trong 1 giây: không thể đọc hết 10 câu hỏi")
    page.get_by_role("button", name="Xác nhận").click()
    page.wait_for_url("**/ky/1?thong-bao=disqualified")
    assert page.get_by_text("Đã loại người dự thi.").is_visible()

    # close: the confirmation, the progress, then the prizes and the digest
    page.get_by_role("link", name="Chốt kết quả").click()
    me.check("06-close-confirm")
    page.get_by_role("button", name="Xác nhận").click()
    page.wait_for_url("**/ky/1**")
    if "tien-trinh" in page.url:
        me.check("07-close-progress")
    _wait_for(page, "Kết quả đã chốt — Phiên bản 1")
    assert page.get_by_text("Đã chốt kết quả.").is_visible()
    digest = page.locator("code.hash").first.inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert cheat not in page.locator("#ket-qua").inner_text()  # the disqualified entry won nothing
    me.check("08-period-closed")

    # correct a key: the impact before, the recompute's changes after
    nav(page, "Câu hỏi").click()
    me.check("09-questions")
    page.get_by_role("link", name=re.compile("^Sửa đáp án")).first.click()
    question = page.url.split("/cau-hoi/")[1].split("?")[0]
    key = desk.contest.questions[question].answer
    other = "ABCD"[("ABCD".index(key) + 1) % 4]
    page.get_by_label(other, exact=True).check()
    page.get_by_role("button", name="Xem ảnh hưởng").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("columnheader", name="Bài hợp lệ đổi điểm").is_visible()
    me.check("10-correction-impact")
    page.get_by_label("Lý do").fill("Đáp án gốc in nhầm")
    page.get_by_role("button", name="Xác nhận").click()
    page.wait_for_url("**/cau-hoi?thong-bao=corrected")
    page.goto(desk.url + "/ky/1")
    page.get_by_role("link", name="Tính lại").click()
    me.check("11-recompute-confirm")
    page.get_by_label("Lý do").fill(f"Sửa đáp án câu {question}")
    page.get_by_role("button", name="Xác nhận").click()
    _wait_for(page, "Kết quả đã chốt — Phiên bản 2")
    assert page.get_by_role("heading", name="Thay đổi từ Phiên bản 1 đến Phiên bản 2").is_visible()
    assert page.get_by_role("link", name="Phiên bản 1").is_visible()
    me.check("12-period-recomputed")

    # the hotline: look up by CCCD (a POST, never in the URL), move to another unit, a new key
    someone = next(n for n, p in enumerate(desk.people) if p["id"] != cheat and n % 4 != 3)  # a civil servant
    cccd = f"0380{someone:08d}"
    nav(page, "Tra cứu").click()
    me.check("13-lookup")
    page.get_by_label("Tìm").fill(cccd)
    page.get_by_role("button", name="Tìm").click()
    page.wait_for_url(f"**/tra-cuu/{desk.people[someone]['id']}")
    assert cccd not in page.url and cccd not in page.content()
    assert page.get_by_role("heading", name="Đổi đơn vị").is_visible()
    me.check("14-participant")
    current = page.locator("dl.facts dd").nth(2).inner_text()
    target = next(u for u in desk.contest.units.values() if u.name not in current)
    page.get_by_label("Cơ quan, đơn vị mới").fill(f"{target.name} ({target.code})")
    page.locator("#move_reason").fill("Đăng ký nhầm đơn vị, đã xác minh qua điện thoại")
    page.locator("form[action$='/don-vi']").get_by_role("button", name="Xác nhận").click()
    page.wait_for_url("**thong-bao=moved")
    assert target.name in page.locator("dl.facts").inner_text()
    page.locator("#key_reason").fill("Mất mã truy cập, đã xác minh")
    page.locator("form[action$='/ma']").get_by_role("button", name="Xác nhận").click()
    page.wait_for_load_state("networkidle")
    new_key = page.locator("#new-key").inner_text()
    assert new_key.startswith(desk.people[someone]["id"] + ".")
    me.check("15-new-key")

    # participation and a reminder list
    nav(page, "Tham gia").click()
    me.check("16-participation")
    with page.expect_download() as reminder:
        page.get_by_role("link", name=re.compile("^Danh sách nhắc")).first.click()
    assert reminder.value.suggested_filename.endswith(".csv")

    # the exports: the Excel opened with openpyxl; the personal-data list only with a reason
    nav(page, "Xuất kết quả").click()
    me.check("17-exports")
    with page.expect_download() as excel:
        page.get_by_role("link", name="Kết quả (Excel) Tuần 1").click()
    saved = desk.workdir / excel.value.suggested_filename
    excel.value.save_as(saved)
    book = load_workbook(saved)
    assert book.sheetnames[:3] == ["Giải cá nhân", "Giải tập thể", "Xếp hạng"]
    ranking = list(book["Xếp hạng"].values)
    assert ranking[0][0] == "Bảng" and len(ranking) > 1 and "Điện thoại (ẩn)" not in ranking[0]
    page.get_by_role("link", name="Danh sách đoạt giải kèm thông tin cá nhân Tuần 1").click()
    me.check("18-personal-data-reason")
    page.get_by_label("Lý do").fill("Hồ sơ trao giải Tuần 1")
    with page.expect_download() as personal:
        page.get_by_role("button", name="Xác nhận").click()
    saved = desk.workdir / "personal.xlsx"
    personal.value.save_as(saved)
    winners = list(load_workbook(saved)["Giải cá nhân"].values)
    assert winners[0][-3:] == ("Số CCCD", "Điện thoại", "Ngày sinh") and len(winners) > 1

    # the audit: every action with the organiser's name and reason
    time.sleep(2)  # the scorer archives the last events
    nav(page, "Nhật ký").click()
    log = page.locator("main").inner_text()
    for said in ("Loại người dự thi", "Chốt / tính lại kết quả", "Sửa đáp án", "Đổi đơn vị", "Cấp lại mã truy cập",
                 "tra cứu theo số CCCD", "xuất danh sách đoạt giải kèm thông tin cá nhân", "Hồ sơ trao giải Tuần 1"):
        assert said in log, said
    assert cccd not in log and "admin" in log
    me.check("19-audit")

    # a change posted without its CSRF token: 403, nothing changed
    victim = next(p["id"] for p in desk.people if p["id"] not in (cheat, desk.people[someone]["id"]))
    refused = page.request.post(desk.url + "/loai", form={"participant_id": victim, "reason": "x", "back": "/"},
                                max_redirects=0)
    assert refused.status == 403
    file = page.request.get(desk.url + f"/v1/admin/participants/{victim}").json()
    assert file["registration"]["disqualified_reason"] is None

    # every view on a phone too, with the same session
    phone = Organiser(browser, desk, PHONE)
    phone.context.add_cookies([c for c in me.context.cookies() if c["name"] == "cchc_desk"])
    for path, shot in (("/", "03-overview"), ("/ky/1", "08-period-closed"), ("/ky/2", "20-period-open"),
                       ("/cau-hoi", "09-questions"), (f"/cau-hoi/{question}?dap-an={key}", "10-correction-impact"),
                       ("/tra-cuu", "13-lookup"), (f"/tra-cuu/{desk.people[someone]['id']}", "14-participant"),
                       ("/tham-gia", "16-participation"), ("/xuat", "17-exports"), ("/nhat-ky", "19-audit"),
                       ("/ky/1/co/shared_address", "21-flags-of-a-kind")):
        phone.go(path, shot)
    me.go("/ky/2", "20-period-open")
    phone.context.close()

    # sign out: the session ends on the server
    page.get_by_role("button", name="Đăng xuất").click()
    page.wait_for_url("**/dang-nhap**")
    assert page.get_by_text("Đã đăng xuất.").is_visible()
    page.goto(desk.url + "/nhat-ky")
    assert "/dang-nhap" in page.url
    me.context.close()


def test_five_failed_sign_ins_in_a_minute_are_429(browser: Any, desk: Desk) -> None:
    them = Organiser(browser, desk)
    page = them.page
    statuses = []
    for _ in range(6):
        page.goto(desk.url + "/dang-nhap")
        page.get_by_label("Tên").fill("admin")
        page.get_by_label("Mã").fill("khong-dung-" + "x" * 30)
        with page.expect_response(lambda r: r.url.endswith("/dang-nhap") and r.request.method == "POST") as answer:
            page.get_by_role("button", name="Đăng nhập").click()
        statuses.append(answer.value.status)
    assert statuses[-1] == 429 and statuses.count(401) <= 5, statuses
    assert page.get_by_text(re.compile("Đăng nhập sai quá 5 lần")).first.is_visible()
    them.check("22-sign-in-429")
    with page.expect_response(lambda r: r.url.endswith("/dang-nhap") and r.request.method == "POST") as answer:
        them.sign_in("admin", desk.token)  # the right token too, until the minute has passed
    assert answer.value.status == 429
    them.context.close()
