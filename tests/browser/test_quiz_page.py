"""The quiz page in a real browser (Debian's Chromium driven by Playwright) against a live stack, found by its
labels and roles as DESIGN §6a names them: the whole path on a phone (360 px) and a desktop, registration
refused field by field, an attempt that survives a reload, the network going away, a 503 and a lost answer, a
double tap, the deadline, a second device, the keyboard alone, a device clock minutes off, an accessibility
audit of every view (axe-core, served to the page by the test only) and the first view's weight. Screenshots
of every view in test-output/browser/quiz-*.png.

Run by `make browser-test` (it installs Chromium, Playwright and axe-core); not part of `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ops.embedded import free_port
from ops.stack import Stack
from ops.wiring import contest_of
from runtime.settings import REPO_CONTESTS, Settings
from tests.paths import ROOT

pytestmark = pytest.mark.browser
OUT = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("CCHC_CHROMIUM", "/usr/bin/chromium")
AXE = Path(os.environ.get("CCHC_AXE", ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
TIME_LIMIT_S = 60
_people = count(1)


@dataclass
class Live:
    url: str  # ingest: the quiz page
    results: str
    contest: Any
    consent: str


def _contest(workdir: Path) -> Path:
    """The demo contest (with its privacy notice) and one week open from a minute ago for 40 minutes, 60 s an
    attempt: short enough to watch a deadline pass."""
    target = workdir / "contest"
    shutil.copytree(REPO_CONTESTS / "demo", target)
    toml = target / "contest.toml"
    text = toml.read_text()
    now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).replace(microsecond=0)
    week = f'[[periods]]\nname = "Tuần 1"\nstart = {(now - timedelta(minutes=1)).isoformat()}\n' \
           f'end = {(now + timedelta(minutes=40)).isoformat()}\n\n'
    text = re.sub(r"(?m)^time_limit_seconds = \d+", f"time_limit_seconds = {TIME_LIMIT_S}", text)
    toml.write_text(text[:text.index("[schedule]")] + week + text[text.index("[[groups]]"):])
    return target


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-quiz-browser-"))
    settings = Settings(contest_dir=_contest(workdir), data_dir=workdir / "data", ingest_port=free_port(),
                        results_port=free_port(), log_level="warning", address_limit=0)
    stack = Stack(settings, scorers=1)
    try:
        running = stack.start()
        contest = contest_of(running)
        assert contest.privacy is not None
        yield Live(f"http://{running.host}:{running.ingest_port}", f"http://{running.host}:{running.results_port}",
                   contest, contest.privacy.version)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # installed by `make browser-test`: missing, it fails loudly

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


# -- the API, as a test reads it --------------------------------------------------------------------------

def _api(live: Live, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(live.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.load(e)


def _person(live: Live) -> dict[str, Any]:
    n = next(_people) + int(time.time()) % 1000 * 1000
    return {"full_name": "Lê Thị Thu Hà", "id_number": f"0381{n:08d}", "phone": f"092{n:07d}",
            "birth_date": "1990-05-17", "group": "nhan_dan", "consent": {"version": live.consent}}


def _registered(live: Live) -> tuple[str, str]:
    status, body = _api(live, "POST", "/v1/participants", _person(live))
    assert status == 201, body
    return body["participant_id"], body["access_key"]


def _entries(live: Live, key: str) -> list[dict[str, Any]]:
    """The receipts ingest holds for the participant in week 1: one per entry."""
    status, me = _api(live, "GET", "/v1/participants/me", key=key)
    assert status == 200, me
    return list(me["periods"][0]["receipts"])


# -- the browser ------------------------------------------------------------------------------------------

class Watch:
    """A page under watch: no script error, no CSP violation, nothing fetched from anywhere else."""

    def __init__(self, page: Any, origins: tuple[str, ...]) -> None:
        self.page = page
        self.problems: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" and "net::" not in m.text
                and "Failed to load resource" not in m.text else None)
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(origins) or r.url.startswith(("blob:", "data:"))
                else self.outside.append(r.url))

    def check(self) -> None:
        assert not self.problems, self.problems
        assert not self.outside, self.outside


def _open(browser: Any, live: Live, screen: dict[str, Any], **options: Any) -> tuple[Any, Any, Watch]:
    context = browser.new_context(locale="vi-VN", permissions=["clipboard-read", "clipboard-write"],
                                  accept_downloads=True, **screen, **options)
    page = context.new_page()
    return context, page, Watch(page, (live.url, live.results))


def _screen_name(screen: dict[str, Any]) -> str:
    return "phone" if screen is PHONE else "desktop"


def shot(page: Any, name: str, screen: dict[str, Any]) -> None:
    """A full-page screenshot, after checking nothing scrolls sideways (DESIGN §6a: 360 px)."""
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"{name} scrolls sideways by {width}px"
    page.screenshot(path=str(OUT / f"quiz-{name}-{_screen_name(screen)}.png"), full_page=True)


def load_axe(page: Any, live: Live) -> None:
    """axe-core into the page, served by the test from the page's own origin (so the page's CSP allows it; the
    app never serves it). Done before going offline for a view that is audited offline."""
    source = AXE.read_text()
    page.route(f"{live.url}/__test_axe.js", lambda route: route.fulfill(body=source, content_type="text/javascript"))
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=f"{live.url}/__test_axe.js")


def audit(page: Any, live: Live, what: str) -> None:
    """axe-core over the page as it stands: no serious or critical violation."""
    load_axe(page, live)
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    (OUT / f"quiz-axe-{what}.json").write_text(json.dumps(found, ensure_ascii=False, indent=1))
    assert not bad, f"{what}: {bad}"


def sign_in(page: Any, live: Live, key: str) -> None:
    page.goto(live.url + "/dang-nhap")
    page.get_by_label("Mã truy cập").fill(key)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url("**/thi")


def start(page: Any) -> list[Any]:
    """Bắt đầu làm bài: the attempt's questions, each a radio group named by its text."""
    page.get_by_role("button", name="Bắt đầu làm bài").click()
    page.get_by_role("timer").wait_for()
    groups = page.get_by_role("radiogroup")
    groups.first.wait_for()
    return [groups.nth(i) for i in range(groups.count())]


def answer_all(groups: list[Any], upto: int | None = None) -> None:
    for group in groups[:upto]:
        group.get_by_role("radio").first.check()


def receipt(page: Any, timeout_ms: float = 20_000) -> Any:
    heading = page.get_by_role("heading", name="Đã nộp bài")
    heading.wait_for(timeout=timeout_ms)
    return heading


# -- the whole path ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("screen", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_whole_path_from_the_landing_page_to_the_standing(browser: Any, live: Live, screen: dict[str, Any]) -> None:
    context, page, watch = _open(browser, live, screen)
    name = _screen_name(screen)
    page.goto(live.url + "/", wait_until="networkidle")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.wait_for_function("document.querySelector('[data-countdown]').textContent.includes('còn')")
    assert page.get_by_role("heading", name="Thể lệ").is_visible()
    shot(page, "1-landing", screen)
    audit(page, live, f"landing-{name}")
    page.get_by_role("link", name="Đăng ký", exact=True).click()
    page.wait_for_url("**/dang-ky")
    shot(page, "2-register", screen)
    audit(page, live, f"register-{name}")
    person = _person(live)
    page.get_by_label("Họ và tên").fill("Nguyễn Văn Bình")
    page.get_by_label("Số CCCD").fill(person["id_number"])
    page.get_by_label("Số điện thoại").fill(person["phone"])
    page.get_by_label("Ngày sinh").fill("17/05/1990")
    page.get_by_role("radio", name="Cán bộ, công chức, viên chức").check()
    unit = page.get_by_role("combobox", name="Cơ quan, đơn vị")
    unit.fill("hung dung")  # no accents: finds "UBND phường Hưng Dũng"
    page.get_by_role("option", name="UBND phường Hưng Dũng").click()
    assert unit.input_value() == "UBND phường Hưng Dũng"
    page.get_by_label("Tôi đồng ý với thông báo xử lý dữ liệu cá nhân").check()
    page.get_by_role("button", name="Đăng ký").click()
    page.get_by_role("heading", name="Mã truy cập của bạn").wait_for()
    key = page.locator("[data-key-text]").inner_text().strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+", key)
    page.get_by_role("button", name="Sao chép").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    with page.expect_download() as download:
        page.get_by_role("button", name="Tải về").click()
    assert key in Path(download.value.path()).read_text()
    shot(page, "3-access-key", screen)
    audit(page, live, f"access-key-{name}")
    # Sign in on this device as if it were a new one: the key is all one needs.
    page.evaluate("localStorage.clear()")
    page.goto(live.url + "/dang-nhap")
    shot(page, "4-sign-in", screen)
    audit(page, live, f"sign-in-{name}")
    sign_in(page, live, key)
    page.get_by_role("button", name="Bắt đầu làm bài").wait_for()
    shot(page, "5-start", screen)
    audit(page, live, f"start-{name}")
    groups = start(page)
    assert len(groups) == live.contest.rules.questions_per_attempt
    assert groups[0].get_by_role("radio").count() == 4
    answer_all(groups)
    page.get_by_label("Câu hỏi dự đoán").fill("1234")
    shot(page, "6-attempt", screen)
    audit(page, live, f"attempt-{name}")
    page.get_by_role("button", name="Nộp bài").click()
    receipt(page)
    assert page.get_by_text("Thời gian làm bài (máy chủ đo)").is_visible()
    shot(page, "7-receipt", screen)
    audit(page, live, f"receipt-{name}")
    assert len(_entries(live, key)) == 1
    page.get_by_role("link", name="Xem kết quả của bạn trên trang kết quả").click()
    page.wait_for_url(f"{live.results}/periods/1/participants/*")
    page.get_by_role("heading", name="Kết quả của người dự thi").wait_for()
    shot(page, "8-standing", screen)
    page.goto(live.url + "/tai-khoan")
    page.get_by_text("Nguyễn Văn Bình").wait_for()
    assert page.get_by_text("UBND phường Hưng Dũng").is_visible()
    assert page.get_by_text(f"phiên bản {live.consent}", exact=False).is_visible()
    shot(page, "9-account", screen)
    audit(page, live, f"account-{name}")
    watch.check()
    context.close()


def test_a_registration_refused_field_by_field(browser: Any, live: Live) -> None:
    taken = _person(live)
    assert _api(live, "POST", "/v1/participants", taken)[0] == 201
    context, page, watch = _open(browser, live, PHONE)
    page.goto(live.url + "/dang-ky")

    def refused(label: str, says: str) -> None:
        field = page.get_by_label(label, exact=True)
        message = page.locator(".field-error .error-message").filter(has_text=says)
        message.wait_for()
        assert field.get_attribute("aria-invalid") == "true"
        assert message.get_attribute("id") in (field.get_attribute("aria-describedby") or "").split()
        assert page.get_by_role("alert").get_by_role("link", name=says).is_visible()  # the summary links to it

    page.get_by_label("Họ và tên").fill("Trần Văn An")
    page.get_by_label("Số CCCD").fill("12345")
    page.get_by_label("Số điện thoại").fill("0981234567")
    page.get_by_label("Ngày sinh").fill("01/01/2020")
    page.get_by_role("radio", name="Nhân dân").check()
    page.get_by_role("button", name="Đăng ký").click()
    refused("Số CCCD", "Số CCCD gồm đúng 12 chữ số")
    refused("Ngày sinh", "phải đủ 15 tuổi")
    refused("Tôi đồng ý với thông báo xử lý dữ liệu cá nhân", "Đánh dấu ô đồng ý")
    shot(page, "10-register-refused", PHONE)
    audit(page, live, "register-refused")
    page.get_by_label("Số CCCD").fill(taken["id_number"])
    page.get_by_label("Ngày sinh").fill("17/05/1990")
    page.get_by_label("Tôi đồng ý với thông báo xử lý dữ liệu cá nhân").check()
    page.get_by_role("button", name="Đăng ký").click()
    refused("Số CCCD", "đã được dùng để đăng ký")  # the server's 409, next to its field
    assert page.locator(".field-error").count() == 1
    shot(page, "11-register-duplicate", PHONE)
    audit(page, live, "register-duplicate")
    watch.check()
    context.close()


# -- never lose an answer ---------------------------------------------------------------------------------

def test_an_attempt_survives_a_reload(browser: Any, live: Live) -> None:
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    groups = start(page)
    first = groups[0].get_attribute("aria-labelledby") or groups[0].inner_text()
    for group in groups[:3]:
        group.get_by_role("radio").nth(1).check()
    page.get_by_label("Câu hỏi dự đoán").fill("77")
    page.reload()
    groups = [page.get_by_role("radiogroup").nth(i) for i in range(page.get_by_role("radiogroup").count())]
    assert (groups[0].get_attribute("aria-labelledby") or groups[0].inner_text()) == first  # the same attempt
    assert [g.get_by_role("radio").nth(1).is_checked() for g in groups[:4]] == [True, True, True, False]
    assert page.get_by_label("Câu hỏi dự đoán").input_value() == "77"
    page.get_by_role("button", name="Nộp bài").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert "chưa trả lời" in dialog.inner_text()
    shot(page, "12-confirm-unanswered", PHONE)
    audit(page, live, "confirm")
    dialog.get_by_role("button", name="Vẫn gửi bài").click()
    receipt(page)
    assert len(_entries(live, key)) == 1
    watch.check()
    context.close()


def test_offline_before_submitting_then_sent_once_back_online(browser: Any, live: Live) -> None:
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    answer_all(start(page))
    page.get_by_label("Câu hỏi dự đoán").fill("5")
    load_axe(page, live)  # offline, the view is audited with what the page already holds
    context.set_offline(True)
    page.get_by_role("button", name="Nộp bài").click()
    page.get_by_text("Mất kết nối mạng").wait_for()
    shot(page, "13-offline", PHONE)
    audit(page, live, "offline")
    time.sleep(3)
    assert _entries(live, key) == []  # nothing went
    back = time.monotonic()
    context.set_offline(False)
    receipt(page, timeout_ms=10_000)
    assert time.monotonic() - back < 6  # within 5 s of the connection's return
    assert len(_entries(live, key)) == 1
    watch.check()
    context.close()


def test_a_503_and_a_lost_answer_are_retried_into_one_entry(browser: Any, live: Live) -> None:
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    answer_all(start(page))
    page.get_by_label("Câu hỏi dự đoán").fill("42")
    tries: list[float] = []

    def flaky(route: Any) -> None:
        tries.append(time.monotonic())
        if len(tries) == 1:
            route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/json"},
                          body='{"error": {"code": "unavailable", "message": "overloaded; retry shortly"}}')
        elif len(tries) == 2:
            route.fetch()  # it reaches the server and is recorded …
            route.abort("connectionreset")  # … but its answer never comes back
        else:
            route.continue_()

    page.route("**/v1/submissions", flaky)
    page.get_by_role("button", name="Nộp bài").click()
    receipt(page)
    assert len(tries) == 3
    # again after the 503's Retry-After (1 s), then after the backoff's second step (1 s), each ±20 %
    gaps = [later - earlier for earlier, later in pairwise(tries)]
    assert all(0.75 <= gap <= 3.0 for gap in gaps), gaps  # 0.8–1.2 s each, with room for a busy machine
    entries = _entries(live, key)
    assert len(entries) == 1 and entries[0]["submission_id"] in page.locator("#receipt").inner_text()
    watch.problems.clear()  # the browser logs the failed loads it was made to meet
    watch.check()
    context.close()


def test_a_double_click_on_submit_makes_one_entry(browser: Any, live: Live) -> None:
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    answer_all(start(page))
    page.get_by_label("Câu hỏi dự đoán").fill("9")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/v1/submissions") else None)
    page.get_by_role("button", name="Nộp bài").dblclick()
    receipt(page)
    assert len(sent) == 1 and len(_entries(live, key)) == 1
    watch.check()
    context.close()


def test_the_deadline_sends_what_is_answered(browser: Any, live: Live) -> None:
    pid, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    groups = start(page)
    answer_all(groups, upto=2)  # two answered, no prediction: at the deadline it goes with 0
    receipt(page, timeout_ms=(TIME_LIMIT_S + 15) * 1000)
    shot(page, "14-receipt-at-deadline", PHONE)
    audit(page, live, "receipt-at-deadline")
    entries = _entries(live, key)
    assert len(entries) == 1 and TIME_LIMIT_S * 1000 - 1500 <= entries[0]["duration_ms"] <= (TIME_LIMIT_S + 10) * 1000
    for _ in range(50):  # the scorer projects it within seconds
        status, view = _results(live, f"/v1/periods/1/participants/{pid}")
        if status == 200 and view["attempts"]:
            break
        time.sleep(0.2)
    assert view["attempts"][0]["prediction"] == 0 and view["attempts"][0]["correct"] <= 2
    watch.check()
    context.close()


def _results(live: Live, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(live.results + path, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.load(e)


def test_a_resume_on_a_second_device_with_only_the_access_key(browser: Any, live: Live) -> None:
    _, key = _registered(live)
    first, page, watch = _open(browser, live, PHONE)
    sign_in(page, live, key)
    texts = [g.inner_text() for g in start(page)]
    second, other, watch_other = _open(browser, live, DESKTOP)  # another device: nothing in its storage
    sign_in(other, live, key)
    groups = [other.get_by_role("radiogroup").nth(i) for i in range(len(texts))]
    groups[0].wait_for()
    assert [g.inner_text() for g in groups] == texts  # the same attempt (GET /v1/attempts/current)
    shot(other, "15-resumed-elsewhere", DESKTOP)
    audit(other, live, "resumed-elsewhere")
    answer_all(groups)
    other.get_by_label("Câu hỏi dự đoán").fill("300")
    other.get_by_role("button", name="Nộp bài").click()
    receipt(other)
    assert len(_entries(live, key)) == 1
    for w in (watch, watch_other):
        w.check()
    first.close()
    second.close()


# -- everyone, every device -------------------------------------------------------------------------------

def _focused(page: Any) -> str:
    return str(page.evaluate("""() => { const e = document.activeElement;
        const label = e.labels && e.labels.length ? e.labels[0].textContent : '';
        return (e.getAttribute('aria-label') || label || e.textContent || '').trim(); }"""))


def _tab_to(page: Any, name: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page).startswith(name):
            return
    raise AssertionError(f"Tab never reached {name!r} (last: {_focused(page)!r})")


def test_keyboard_only_from_the_landing_page_to_the_receipt(browser: Any, live: Live) -> None:
    context, page, watch = _open(browser, live, DESKTOP)
    page.goto(live.url + "/")
    page.keyboard.press("Tab")
    assert _focused(page).startswith("Bỏ qua")
    _tab_to(page, "Đăng ký")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dang-ky")
    person = _person(live)
    for label, value in (("Họ và tên", "Phạm Quang Huy"), ("Số CCCD", person["id_number"]),
                         ("Số điện thoại", person["phone"]), ("Ngày sinh", "02/09/1985")):
        _tab_to(page, label)
        page.keyboard.type(value)
    _tab_to(page, "Cán bộ, công chức, viên chức")
    page.keyboard.press("Space")
    _tab_to(page, "Cơ quan, đơn vị")
    page.keyboard.type("ben thuy")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.get_by_role("combobox", name="Cơ quan, đơn vị").input_value() == "UBND phường Bến Thủy"
    _tab_to(page, "Tôi đồng ý")
    page.keyboard.press("Space")
    _tab_to(page, "Đăng ký")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Mã truy cập của bạn").wait_for()
    assert _focused(page) == "Mã truy cập của bạn"  # focus moved to the new step
    _tab_to(page, "Vào làm bài")
    page.keyboard.press("Enter")
    page.wait_for_url("**/thi")
    _tab_to(page, "Bắt đầu làm bài")
    page.keyboard.press("Enter")
    page.get_by_role("timer").wait_for()
    for _ in range(live.contest.rules.questions_per_attempt):
        page.keyboard.press("Tab")  # into the next radio group …
        page.keyboard.press("ArrowDown")  # … and choose (arrows select within a group)
    checked = page.locator("input[type=radio]:checked").count()
    assert checked == live.contest.rules.questions_per_attempt
    _tab_to(page, "Câu hỏi dự đoán")
    page.keyboard.type("2500")
    _tab_to(page, "Nộp bài")
    page.keyboard.press("Enter")
    receipt(page)
    assert _focused(page) == "Đã nộp bài"
    shot(page, "16-keyboard-receipt", DESKTOP)
    watch.check()
    context.close()


@pytest.mark.parametrize("minutes", [7, -5])
def test_the_countdown_follows_the_server_when_the_device_clock_is_wrong(browser: Any, live: Live,
                                                                          minutes: int) -> None:
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    context.add_init_script(f"""(() => {{
        const shift = {minutes * 60_000}, RealDate = Date;
        class ShiftedDate extends RealDate {{
            constructor(...a) {{ if (a.length) super(...a); else super(RealDate.now() + shift); }}
            static now() {{ return RealDate.now() + shift; }}
        }}
        window.Date = ShiftedDate;
    }})();""")
    sign_in(page, live, key)
    start(page)
    time.sleep(1.5)
    shown = page.get_by_role("timer").inner_text()
    _, attempt = _api(live, "GET", "/v1/attempts/current", key=key)
    left = datetime.fromisoformat(attempt["deadline"]).timestamp() - time.time()  # this machine is the server
    mm, ss = shown.split(":")[-2:]
    assert abs(int(mm) * 60 + int(ss) - left) <= 2, (shown, left)
    if minutes > 0:
        shot(page, "17-clock-7-minutes-ahead", PHONE)
    watch.check()
    context.close()


def test_the_first_view_weighs_under_100_kb(browser: Any, live: Live) -> None:
    """`/` at 360 px with everything it loads, bytes on the wire (compressed, headers included), in a fresh
    browser: nothing cached."""
    context, page, _ = _open(browser, live, PHONE)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    loaded: dict[str, float] = {}
    cdp.on("Network.loadingFinished", lambda e: loaded.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(live.url + "/", wait_until="networkidle")
    total = sum(loaded.values())
    (OUT / "quiz-first-view-bytes.txt").write_text(f"{total:.0f} bytes in {len(loaded)} responses\n")
    assert 0 < total < 100_000, total
    context.close()


def test_a_participant_erases_their_personal_data_from_their_account(browser: Any, live: Live) -> None:
    """/tai-khoan's **Xoá dữ liệu cá nhân**: a confirmation that says what it means, then the erasure; the key
    stops working."""
    _, key = _registered(live)
    context, page, watch = _open(browser, live, PHONE)
    page.goto(live.url + "/dang-nhap")
    sign_in(page, live, key)
    page.goto(live.url + "/tai-khoan")
    page.get_by_text("Lê Thị Thu Hà").wait_for()
    page.get_by_role("button", name="Xoá dữ liệu cá nhân").click()
    page.get_by_role("heading", name="Bạn có chắc muốn xoá dữ liệu cá nhân?").wait_for()
    assert page.get_by_text("Mã truy cập của bạn ngừng hoạt động ngay", exact=False).is_visible()
    shot(page, "18-erase-confirm", PHONE)
    audit(page, live, "erase-confirm")
    page.get_by_role("button", name="Không xoá").click()
    assert _api(live, "GET", "/v1/participants/me", key=key)[0] == 200  # nothing erased yet
    page.get_by_role("button", name="Xoá dữ liệu cá nhân").click()
    page.get_by_role("button", name="Xác nhận xoá").click()
    page.get_by_role("heading", name="Đã xoá dữ liệu cá nhân").wait_for()
    shot(page, "19-erased", PHONE)
    audit(page, live, "erased")
    assert _api(live, "GET", "/v1/participants/me", key=key)[0] == 401  # the key stopped working
    assert not [k for k in page.evaluate("Object.keys(localStorage)") if k.endswith(":key")]  # forgotten here too
    watch.check()
    context.close()
