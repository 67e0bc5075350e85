"""The committee's desk as pages (DESIGN §6b): Vietnamese HTML rendered on the server (Jinja2), one family
with the results page — a label above each field, the error beside its field and in a summary at the top,
one primary button per step, every change a POST carrying the session's CSRF token and a reason (**Lý do**)
confirmed with **Xác nhận**. No page needs its script (static/desk.js only ticks countdowns and copies a
key); no asset comes from anywhere but this app (a strict Content-Security-Policy).

The pages are the Committee service's third door: each handler translates a form into a call and the
service's refusals (runtime.errors.Refusal) into a page, nothing more."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from admin.routes import DOOR, Door, send_export, status_of
from admin.schemas import ExportRequest
from admin.service import Committee
from admin.sessions import (
    COOKIE,
    CSRF_FIELD,
    PRE_COOKIE,
    SignInRefused,
    TooManyFailures,
    csrf_matches,
)
from contest.flags import FlagCase
from contest.identity import ERASED_NAME
from contest.model import Period
from eventstore.redis_stream.desk import Session
from runtime.errors import Refusal, Unavailable
from runtime.routes import PERIOD, Param, Route
from runtime.web import GATE, ApiError, period_in_path, read_body, whole_number

HTML = "text/html"
PER_KIND = 50  # flag cases shown per kind on a period's page; the rest one click away
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                               " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
STATUS_NAMES = {"upcoming": "Sắp diễn ra", "open": "Đang diễn ra", "closing": "Chờ chốt kết quả",
                "closed": "Đã chốt kết quả"}
FLAG_NAMES = {"too_fast": "Quá nhanh", "shared_address": "Cùng địa chỉ", "copied_entry": "Bài giống nhau"}
PHASES = {"waiting": "Chờ các bài nộp trước giờ kết thúc về đủ (an toàn 3 giây sau giờ kết thúc)",
          "draining": "Chờ máy chấm chấm xong mọi bài nộp trước giờ kết thúc",
          "computing": "Tính kết quả: giá trị thực của câu dự đoán, xếp hạng, giải cá nhân và giải tập thể",
          "serving": "Chờ trang kết quả công khai hiển thị phiên bản mới",
          "done": "Xong", "failed": "Không thành công"}
WHY_NOT = {"disqualified": "không tính: người dự thi đã bị loại",
           "not_best": "không tính: một bài khác của người này được tính",
           "not_in_result": "không tính trong kết quả đã chốt",
           "not_scored_yet": "đã nhận, đang chấm",
           "not_submitted": "đã bắt đầu, chưa nộp (hoặc quá giờ)"}
AUDIT_NAMES = {"participant_disqualified": "Loại người dự thi", "answer_key_corrected": "Sửa đáp án",
               "participant_erased": "Xoá dữ liệu cá nhân",
               "results_published": "Chốt / tính lại kết quả", "participant_moved": "Đổi đơn vị",
               "access_key_reset": "Cấp lại mã truy cập", "committee_read": "Đọc dữ liệu cá nhân"}
READS = {"personal_data_export": "xuất danh sách đoạt giải kèm thông tin cá nhân",
         "lookup_id_number": "tra cứu theo số CCCD", "lookup_phone": "tra cứu theo số điện thoại"}
NOTICES = {"closed": "Đã chốt kết quả.", "recomputed": "Đã tính lại: phiên bản mới đã được công bố.",
           "disqualified": "Đã loại người dự thi. Các kỳ chưa chốt tính lại ngay; kỳ đã chốt chỉ đổi khi Tính lại.",
           "corrected": "Đã sửa đáp án. Các kỳ chưa chốt chấm lại ngay; kỳ đã chốt chỉ đổi khi Tính lại.",
           "moved": "Đã đổi đơn vị. Các kỳ chưa chốt tính theo đơn vị mới ngay; kỳ đã chốt chỉ đổi khi Tính lại.",
           "erased": "Đã xoá dữ liệu cá nhân: không ai đọc được số CCCD, điện thoại, ngày sinh và họ tên nữa; mã truy"
                     " cập cũ hết hiệu lực; bài thi và giải vẫn giữ nguyên.",
           "signed_out": "Đã đăng xuất."}
# The service's refusals in the committee's words, by code (its messages are the JSON door's, in English).
REFUSALS = {"unknown_participant": "Không có người dự thi nào với mã, số CCCD hoặc số điện thoại này.",
            "unknown_unit": "Không có đơn vị này trong cuộc thi.",
            "same_unit": "Người dự thi đã ở đơn vị này.",
            "participant_erased": "Dữ liệu cá nhân của người dự thi này đã bị xoá: không cấp lại mã được.",
            "unknown_question": "Không có câu hỏi này.",
            "unknown_period": "Không có kỳ thi này.",
            "unknown_revision": "Không có phiên bản này.",
            "period_not_ended": "Kỳ thi chưa kết thúc: chỉ chốt được sau giờ kết thúc.",
            "not_closed": "Kỳ thi chưa được chốt.",
            "not_drained": "Máy chấm chưa chấm xong các bài nộp trước giờ kết thúc; hãy thử lại sau ít giây.",
            "unavailable": "Hệ thống đang gián đoạn; hãy thử lại sau ít phút.",
            "invalid": "Dữ liệu chưa hợp lệ."}


def _when(ms: int | None, tz: Any) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M:%S %d/%m/%Y")


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return f"{value:,.6f}".rstrip("0").rstrip(".").replace(",", " ").replace(".", ",").replace(" ", ".")


def _percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{digits}f} %".replace(".", ",")


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms // 1000
    return f"{seconds // 60} phút {seconds % 60:02d} giây" if seconds >= 60 else f"{ms / 1000:.1f} giây".replace(".", ",")


TEMPLATES = Environment(loader=PackageLoader("admin", "templates"), autoescape=select_autoescape(["html"]),
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters.update(number=_number, percent=_percent, duration=_duration, quote=lambda s: quote(str(s), safe=""),
                         status_name=STATUS_NAMES.get, flag_name=FLAG_NAMES.get, phase=PHASES.get,
                         why_not=lambda c: WHY_NOT.get(c, c or ""), audit_name=lambda c: AUDIT_NAMES.get(c, c),
                         read_name=lambda c: READS.get(c, c))
STATIC = {f.name: (f.read_bytes(), STATIC_TYPES[f.name[f.name.rindex("."):]])
          for f in resources.files("admin").joinpath("static").iterdir() if f.name[f.name.rfind("."):] in STATIC_TYPES}


def _door(request: web.Request) -> Door:
    return request.app[DOOR]


SESSION = web.RequestKey("desk_session", Session)


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    door = _door(request)
    contest = door.committee.contest
    session = request.get(SESSION)
    html = TEMPLATES.get_template(template).render(
        contest=contest, path=request.path, session=session, when=lambda ms: _when(ms, contest.tz),
        unit_name=lambda code: contest.units[code].name if code in contest.units else (code or ""),
        group_name=lambda code: g.name if (g := contest.group(code)) else code, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS}, content_type="text/html",
                        text=f'<!doctype html><html lang="vi"><a href="{location}">Tiếp tục</a></html>')


def _refusal_text(e: Refusal) -> str:
    return REFUSALS.get(e.code, str(e))


Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return _render(request, "error.html", status, title=title, message=message)


def page(*, changes: bool = False) -> Callable[[Page], Page]:
    """A page of a signed-in organiser: without a session, on to the sign-in (nothing done); a change
    without the session's CSRF token is 403 and nothing is done. Refusals and outages become pages."""

    def wrap(handler: Page) -> Page:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            gate = request.app.get(GATE)
            try:
                if gate is not None and gate.over():
                    raise Unavailable("overloaded")
                session = await _door(request).sessions.current(request)
                if session is None:
                    target = request.path if request.method == "GET" else "/"
                    return _see_other("/dang-nhap?" + urlencode({"tiep": target}))
                request[SESSION] = session
                if changes:
                    await read_body(request)  # bounded in time and size, as the JSON door's
                    form = await _form(request)
                    if not csrf_matches(session, _field(form, CSRF_FIELD)):
                        return _error_page(request, 403, "Yêu cầu không hợp lệ",
                                           "Biểu mẫu thiếu mã xác thực (CSRF) hoặc đã cũ, nên không có gì thay đổi."
                                           " Hãy mở lại trang và làm lại.")
                return await handler(request)
            except ApiError as e:
                return _error_page(request, e.status, "Không tìm thấy" if e.status == 404 else "Không thực hiện được",
                                   REFUSALS.get(e.code, e.message))
            except Refusal as e:
                return _error_page(request, status_of(e), "Không thực hiện được", _refusal_text(e))
            except Unavailable:
                response = _error_page(request, 503, "Tạm thời gián đoạn", REFUSALS["unavailable"])
                response.headers["Retry-After"] = "5"
                return response

        return wrapped

    return wrap


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def _form(request: web.Request) -> Any:
    """The posted form; one that cannot be read (a multipart without its boundary, a broken encoding) is 422."""
    try:
        return await request.post()
    except (ValueError, AssertionError, LookupError) as e:
        raise ApiError(422, "invalid", f"the form could not be read: {type(e).__name__}") from e


API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/")


@web.middleware
async def pages_not_found(request: web.Request, handler: Page) -> web.StreamResponse:
    """A path the router does not know, outside the API, is a page too; so is a page's path value it refuses
    (runtime.routes.path_values_checked), whatever the method: a form posted to /cau-hoi/<65 characters> is
    answered with the page its route documents."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        known_page = request.match_info.route.resource is not None
        if request.path.startswith(API_PREFIXES) or (request.method != "GET" and not known_page) \
                or DOOR not in request.app:
            raise
        return _render(request, "error.html", 404, title="Không tìm thấy", message="Không có trang nào ở địa chỉ này.")


def _committee(request: web.Request) -> Committee:
    return _door(request).committee


def _by(request: web.Request) -> str:
    return request[SESSION].name


# -- signing in and out ----------------------------------------------------------------------------

async def signin_form(request: web.Request) -> web.Response:
    return await _signin_page(request)


async def _signin_page(request: web.Request, status: int = 200, errors: dict[str, str] | None = None,
                       name: str = "", retry_after: int | None = None) -> web.Response:
    sessions = _door(request).sessions
    token = request.cookies.get(PRE_COOKIE) or ""
    if not 20 <= len(token) <= 64:
        token = _committee(request).new_csrf()
    response = _render(request, "signin.html", status, title="Đăng nhập", errors=errors or {}, name=name, csrf=token,
                       next=_next(request.query.get("tiep", "/")), notice=NOTICES.get(request.query.get("thong-bao", "")))
    sessions.set_cookie(response, PRE_COOKIE, token)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _next(raw: str) -> str:
    """Where to go after signing in: a path of this desk only."""
    return raw if raw.startswith("/") and not raw.startswith("//") and "\\" not in raw and len(raw) < 200 else "/"


async def signin(request: web.Request) -> web.Response:
    sessions = _door(request).sessions
    await read_body(request)
    form = await _form(request)
    pre = request.cookies.get(PRE_COOKIE) or ""
    if not pre or not csrf_matches(Session("", pre), _field(form, CSRF_FIELD)):
        return _error_page(request, 403, "Yêu cầu không hợp lệ", "Biểu mẫu đăng nhập đã cũ; hãy mở lại trang đăng"
                           " nhập và thử lại.")
    name, token = _field(form, "name"), _field(form, "token")
    errors = {}
    if not name.strip():
        errors["name"] = "Hãy nhập tên của bạn."
    if not token.strip():
        errors["token"] = "Hãy nhập mã của bạn."
    if errors:
        return await _signin_page(request, 422, errors, name)
    try:
        cookie, _ = await sessions.sign_in(request, name, token)
    except TooManyFailures as e:
        return await _signin_page(request, 429, {"token": f"Đăng nhập sai quá 5 lần trong một phút từ địa chỉ này;"
                                                          f" hãy thử lại sau {e.retry_after_s} giây."}, name,
                                  retry_after=e.retry_after_s)
    except SignInRefused:
        return await _signin_page(request, 401, {"token": "Tên hoặc mã không đúng."}, name)
    except Unavailable:
        return await _signin_page(request, 503, {"token": REFUSALS["unavailable"]}, name, retry_after=5)
    response = _see_other(_next(_field(form, "next") or "/"))
    sessions.set_cookie(response, COOKIE, cookie)
    sessions.drop_cookie(response, PRE_COOKIE)
    return response


@page(changes=True)
async def signout(request: web.Request) -> web.Response:
    sessions = _door(request).sessions
    await sessions.sign_out(request)
    response = _see_other("/dang-nhap?thong-bao=signed_out")
    sessions.drop_cookie(response, COOKIE)
    return response


# -- the overview ----------------------------------------------------------------------------------

@page()
async def overview_page(request: web.Request) -> web.Response:
    seen = await _committee(request).overview()
    return _render(request, "overview.html", title="Tổng quan", seen=seen)


# -- a period --------------------------------------------------------------------------------------

def _period(request: web.Request) -> Period:
    return period_in_path(request, _committee(request).contest)


def _revision_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    value = whole_number(raw, 2**31)
    if value is None or value < 1:
        raise ApiError(422, "invalid", "Phiên bản phải là một số nguyên dương.")
    return value


@page()
async def period_page(request: web.Request) -> web.Response:
    committee = _committee(request)
    period = _period(request)
    seen = await committee.overview()
    line = next(p for p in seen.periods if p.number == period.number)
    revisions = await committee.revisions(period.number) if line.status == "closed" else []
    shown = _revision_query(request, "phien-ban") or (revisions[-1].revision if revisions else None)
    prizes = await committee.prizes(period.number, shown) if shown else None
    changes, before, after = None, None, None
    if len(revisions) > 1:
        after = _revision_query(request, "den") or revisions[-1].revision
        before = _revision_query(request, "tu") or max(1, after - 1)
        changes = await committee.changes(period.number, before, after)
    leaders = await committee.leaders(period.number) if line.status in ("open", "closing") else {}
    cases = await committee.flag_cases(period.number) if line.status != "upcoming" else []
    by_kind: dict[str, list[FlagCase]] = {}
    for case in cases:
        by_kind.setdefault(case.kind, []).append(case)
    return _render(request, "period.html", title=period.name, period=period, line=line, revisions=revisions,
                   shown=shown, prizes=prizes, changes=changes, before=before, after=after, leaders=leaders,
                   by_kind=by_kind, per_kind=PER_KIND, job=committee.job(period.number),
                   notice=NOTICES.get(request.query.get("thong-bao", "")), frozen=committee.contest.frozen(
                       period, seen.now_ms, line.status == "closed"))


@page()
async def flags_page(request: web.Request) -> web.Response:
    """Every case of one kind (the period page shows the first PER_KIND)."""
    committee = _committee(request)
    period = _period(request)
    kind = request.match_info["kind"]
    if kind not in FLAG_NAMES:
        raise ApiError(404, "not_found", "Không có loại cờ này.")
    cases = [c for c in await committee.flag_cases(period.number) if c.kind == kind]
    return _render(request, "flags.html", title=f"{FLAG_NAMES[kind]} — {period.name}", period=period, kind=kind,
                   cases=cases)


@page()
async def close_confirm(request: web.Request) -> web.Response:
    period = _period(request)
    return _render(request, "close.html", title=f"Chốt kết quả {period.name}", period=period, errors={}, reason="")


@page(changes=True)
async def close(request: web.Request) -> web.Response:
    committee = _committee(request)
    period = _period(request)
    form = await _form(request)
    committee.start_close(period.number, by=_by(request), reason=" ".join(_field(form, "reason").split()))
    return _see_other(f"/ky/{period.number}/tien-trinh")


@page(changes=True)
async def recompute(request: web.Request) -> web.Response:
    committee = _committee(request)
    period = _period(request)
    form = await _form(request)
    try:
        committee.start_close(period.number, by=_by(request), reason=_field(form, "reason"), recompute=True)
    except Refusal as e:
        return _render(request, "recompute.html", 422, title=f"Tính lại {period.name}", period=period,
                       errors={"reason": _refusal_text(e) if e.code != "invalid" else "Hãy ghi lý do tính lại."},
                       reason=_field(form, "reason"))
    return _see_other(f"/ky/{period.number}/tien-trinh")


@page()
async def recompute_form(request: web.Request) -> web.Response:
    period = _period(request)
    return _render(request, "recompute.html", title=f"Tính lại {period.name}", period=period, errors={}, reason="")


@page()
async def progress(request: web.Request) -> web.StreamResponse:
    committee = _committee(request)
    period = _period(request)
    job = committee.job(period.number)
    if job is None:
        return _see_other(f"/ky/{period.number}")
    if job.phase == "done":
        return _see_other(f"/ky/{period.number}?thong-bao={'recomputed' if job.recompute else 'closed'}#ket-qua")
    return _render(request, "progress.html", title=f"Đang chốt {period.name}", period=period, job=job,
                   phases=["waiting", "draining", "computing", "serving"], now_ms=committee.clock.now_ms(),
                   error=REFUSALS.get(job.error_code or "", job.error) if job.error else None)


# -- disqualifying ----------------------------------------------------------------------------------

@page()
async def disqualify_form(request: web.Request) -> web.Response:
    committee = _committee(request)
    participant_id = request.query.get("nguoi", "")
    back = _next(request.query.get("ve", "/"))
    file = await committee.participant(participant_id)
    return _render(request, "disqualify.html", title="Loại người dự thi", file=file, back=back, errors={}, reason="")


@page(changes=True)
async def disqualify_page(request: web.Request) -> web.Response:
    committee = _committee(request)
    form = await _form(request)
    participant_id, back = _field(form, "participant_id"), _next(_field(form, "back") or "/")
    try:
        await committee.disqualify(participant_id, _field(form, "reason"), by=_by(request))
    except Refusal as e:
        if e.code != "invalid":
            raise
        file = await committee.participant(participant_id)
        return _render(request, "disqualify.html", 422, title="Loại người dự thi", file=file, back=back,
                       errors={"reason": "Hãy ghi lý do loại người dự thi này."}, reason="")
    separator = "&" if "?" in back else "?"
    return _see_other(f"{back}{separator}thong-bao=disqualified")


# -- questions ---------------------------------------------------------------------------------------

@page()
async def questions_page(request: web.Request) -> web.Response:
    committee = _committee(request)
    raw = request.query.get("ky")
    period = None
    if raw:
        number = whole_number(raw, 2**31)
        period = committee.contest.period(number) if number is not None else None
        if period is None:
            raise ApiError(404, "unknown_period", "Không có kỳ thi này.")
    stats = await committee.questions(period.number if period else None)
    stats.sort(key=lambda q: (not q.likely_wrong_key, q.right_rate if q.right_rate is not None else 2.0, q.question_id))
    return _render(request, "questions.html", title="Câu hỏi", stats=stats, selected=period,
                   notice=NOTICES.get(request.query.get("thong-bao", "")))


def _question(request: web.Request) -> Any:
    committee = _committee(request)
    question = committee.contest.questions.get(request.match_info["id"])
    if question is None:
        raise ApiError(404, "unknown_question", "Không có câu hỏi này.")
    return question


@page()
async def question_page(request: web.Request) -> web.Response:
    """Sửa đáp án, step 1 and 2: choose the answer, then see what it would change before confirming."""
    committee = _committee(request)
    question = _question(request)
    key = await committee.current_key(question.id)
    answer = request.query.get("dap-an")
    errors = {}
    impact = None
    if answer is not None:
        if answer not in ("A", "B", "C", "D"):
            errors["answer"] = "Hãy chọn một đáp án A, B, C hoặc D."
        elif answer == key:
            errors["answer"] = f"Đáp án hiện tại đã là {key}; hãy chọn đáp án khác."
        else:
            impact = await committee.correction_impact(question.id, answer)  # type: ignore[arg-type]
    return _render(request, "question.html", 422 if errors else 200, title=f"Sửa đáp án câu {question.id}",
                   question=question, key=key, answer=answer if not errors else None, impact=impact, errors=errors,
                   reason="")


@page(changes=True)
async def correct(request: web.Request) -> web.Response:
    committee = _committee(request)
    question = _question(request)
    form = await _form(request)
    answer, reason = _field(form, "answer"), " ".join(_field(form, "reason").split())
    if answer not in ("A", "B", "C", "D") or not reason:
        key = await committee.current_key(question.id)
        impact = await committee.correction_impact(question.id, answer) if answer in "ABCD" and answer else None  # type: ignore[arg-type]
        errors = {"reason": "Hãy ghi lý do sửa đáp án."} if answer in ("A", "B", "C", "D") else \
            {"answer": "Hãy chọn một đáp án A, B, C hoặc D."}
        return _render(request, "question.html", 422, title=f"Sửa đáp án câu {question.id}", question=question,
                       key=key, answer=answer if impact is not None else None, impact=impact, errors=errors, reason="")
    await committee.correct_answer(question.id, answer, by=_by(request), reason=reason)  # type: ignore[arg-type]
    return _see_other("/cau-hoi?thong-bao=corrected")


# -- the hotline -------------------------------------------------------------------------------------

DEFAULT_LOOKUP_REASON = "Trả lời cuộc gọi đường dây nóng"


@page()
async def lookup_form(request: web.Request) -> web.Response:
    return _render(request, "lookup.html", title="Tra cứu", errors={}, query="", reason=DEFAULT_LOOKUP_REASON)


@page(changes=True)
async def lookup_page(request: web.Request) -> web.Response:
    """A POST: a CCCD or a phone never goes into a URL or an access log."""
    committee = _committee(request)
    form = await _form(request)
    query, reason = _field(form, "query").strip(), _field(form, "reason")
    try:
        found, _ = await committee.find(query, by=_by(request), reason=reason)
    except Refusal as e:
        field = "reason" if e.code == "invalid" and query and not reason.strip() else "query"
        message = "Hãy ghi lý do tra cứu (được ghi vào nhật ký)." if field == "reason" else \
            "Hãy nhập mã người dự thi, số CCCD (12 chữ số) hoặc số điện thoại." if e.code == "invalid" else \
            _refusal_text(e)
        return _render(request, "lookup.html", status_of(e), title="Tra cứu", errors={field: message}, query="",
                       reason=reason or DEFAULT_LOOKUP_REASON)
    return _see_other(f"/tra-cuu/{quote(found, safe='')}")


async def _participant_page(request: web.Request, participant_id: str, status: int = 200,
                            errors: dict[str, str] | None = None, **extra: Any) -> web.Response:
    committee = _committee(request)
    file = await committee.participant(participant_id)
    return _render(request, "participant.html", status, title=f"Người dự thi {file.registration.display_name}",
                   file=file, errors=errors or {}, units=list(committee.contest.units.values()),
                   erased=file.registration.display_name == ERASED_NAME,
                   notice=NOTICES.get(request.query.get("thong-bao", "")),
                   closed=await committee.published.latest_revisions(), **extra)


@page()
async def participant_page(request: web.Request) -> web.Response:
    return await _participant_page(request, request.match_info["id"])


def _unit_of(committee: Committee, raw: str) -> str | None:
    """The unit the field names: its code, `Name (CODE)` as the suggestions write it, or its exact name."""
    raw = raw.strip()
    if raw in committee.contest.units:
        return raw
    if raw.endswith(")") and "(" in raw:
        code = raw[raw.rindex("(") + 1:-1].strip()
        if code in committee.contest.units:
            return code
    named = [u.code for u in committee.contest.units.values() if u.name.casefold() == raw.casefold()]
    return named[0] if len(named) == 1 else None


@page(changes=True)
async def move(request: web.Request) -> web.Response:
    committee = _committee(request)
    participant_id = request.match_info["id"]
    form = await _form(request)
    unit, reason = _unit_of(committee, _field(form, "unit")), _field(form, "reason")
    errors = {}
    if unit is None:
        errors["unit"] = "Hãy chọn một đơn vị trong danh sách gợi ý."
    if not reason.strip():
        errors["move_reason"] = "Hãy ghi lý do đổi đơn vị."
    if not errors:
        try:
            await committee.move(participant_id, unit or "", by=_by(request), reason=reason)
        except Refusal as e:
            if e.code not in ("same_unit", "unknown_unit"):
                raise
            errors["unit"] = _refusal_text(e)
    if errors:
        return await _participant_page(request, participant_id, 422, errors, unit_value=_field(form, "unit"))
    return _see_other(f"/tra-cuu/{quote(participant_id, safe='')}?thong-bao=moved")


async def _reason_for(request: web.Request, field: str, missing: str) -> str | web.Response:
    """The posted Lý do of one of a participant page's forms, or that page again (422) saying it is missing."""
    reason = _field(await _form(request), "reason")
    if reason.strip():
        return reason
    return await _participant_page(request, request.match_info["id"], 422, {field: missing})


@page(changes=True)
async def reset_key(request: web.Request) -> web.Response:
    reason = await _reason_for(request, "key_reason", "Hãy ghi lý do cấp lại mã.")
    if isinstance(reason, web.Response):
        return reason
    committee, participant_id = _committee(request), request.match_info["id"]
    issued = await committee.reset_key(participant_id, by=_by(request), reason=reason)
    file = await committee.participant(participant_id)
    return _render(request, "key.html", 201, title="Mã truy cập mới", file=file, key=issued.access_key)


@page(changes=True)
async def erase_page(request: web.Request) -> web.Response:
    """Xoá dữ liệu cá nhân: the committee acting on a request received by other means (issue 24's service)."""
    reason = await _reason_for(request, "erase_reason", "Hãy ghi lý do (số, ngày của đơn đề nghị).")
    if isinstance(reason, web.Response):
        return reason
    participant_id = request.match_info["id"]
    await _committee(request).erase(participant_id, reason, by=_by(request))
    return _see_other(f"/tra-cuu/{quote(participant_id, safe='')}?thong-bao=erased")


# -- participation -------------------------------------------------------------------------------------

def _period_query(request: web.Request) -> Period | None:
    raw = request.query.get("ky")
    if not raw:
        return None
    committee = _committee(request)
    number = whole_number(raw, 2**31)
    period = committee.contest.period(number) if number is not None else None
    if period is None:
        raise ApiError(404, "unknown_period", "Không có kỳ thi này.")
    return period


@page()
async def participation_page(request: web.Request) -> web.Response:
    committee = _committee(request)
    period = _period_query(request)
    rows = await committee.participation(period.number if period else None)
    rows.sort(key=lambda u: (not u.below_target, u.participation_rate))
    return _render(request, "participation.html", title="Tham gia", rows=rows, selected=period)


@page()
async def reminders_page(request: web.Request) -> web.Response:
    """A unit's list of whom to remind, as a CSV download (names and masked phones only)."""
    committee = _committee(request)
    period = _period_query(request)
    unit = request.match_info["unit"]
    people = await committee.reminders(unit, period.number if period else None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Mã đơn vị", "Đơn vị", "Họ và tên", "Điện thoại (ẩn)", "Mã người dự thi"])
    for p in people:
        writer.writerow([p.unit_code, committee.contest.units[p.unit_code].name if p.unit_code in committee.contest.units
                         else "", p.display_name, p.phone_masked, p.participant_id])
    name = f"nhac-{unit}-{'ky-' + str(period.number) if period else 'ca-cuoc-thi'}.csv"
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), headers={
        "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{quote(name)}"',
        "Cache-Control": "no-store", **SECURITY_HEADERS})


# -- exports -------------------------------------------------------------------------------------------

@page()
async def exports(request: web.Request) -> web.Response:
    committee = _committee(request)
    closed = await committee.published.latest_revisions()
    return _render(request, "exports.html", title="Xuất kết quả", closed=closed,
                   final=len(closed) == len(committee.contest.periods))


@page()
async def export_file(request: web.Request) -> web.StreamResponse:
    """Kết quả (Excel) / Kết quả (CSV): the public copy of a closed period (or the final), as a download."""
    which, _, fmt = request.match_info["file"].rpartition(".")
    if fmt not in ("xlsx", "csv"):
        raise ApiError(404, "not_found", "Không có tệp này.")
    if which == "chung-cuoc":
        body = ExportRequest("final", fmt)  # type: ignore[arg-type]
    elif which.startswith("ky-") and (number := whole_number(which[3:], 2**31)) is not None:
        if _committee(request).contest.period(number) is None:
            raise ApiError(404, "unknown_period", "Không có kỳ thi này.")
        body = ExportRequest(str(number), fmt, public=True)  # type: ignore[arg-type]
    else:
        raise ApiError(404, "not_found", "Không có tệp này.")
    return await send_export(request, _door(request), body, _by(request))


@page()
async def personal_form(request: web.Request) -> web.Response:
    period = _period(request)
    return _render(request, "personal.html", title="Danh sách đoạt giải kèm thông tin cá nhân", period=period,
                   errors={}, reason="")


@page(changes=True)
async def personal_export(request: web.Request) -> web.StreamResponse:
    period = _period(request)
    form = await _form(request)
    reason = " ".join(_field(form, "reason").split())
    if not reason:
        return _render(request, "personal.html", 422, title="Danh sách đoạt giải kèm thông tin cá nhân",
                       period=period, errors={"reason": "Hãy ghi lý do (được ghi vào nhật ký cùng tên bạn)."},
                       reason="")
    body = ExportRequest(str(period.number), "xlsx", personal_data_reason=reason)
    return await send_export(request, _door(request), body, _by(request))


# -- the audit --------------------------------------------------------------------------------------------

@page()
async def audit_page(request: web.Request) -> web.Response:
    committee = _committee(request)
    before = None
    raw = request.query.get("truoc")
    if raw:
        parts = raw.split("-")
        if len(parts) != 4 or not all(p.lstrip("-").isdigit() and p.isascii() and len(p) < 20 for p in parts):
            raise ApiError(422, "invalid", "Địa chỉ trang nhật ký không hợp lệ.")
        before = (int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))
    lines = await committee.audit(100, before)
    more = "-".join(str(k) for k in lines[-1].key) if len(lines) == 100 else None
    return _render(request, "audit.html", title="Nhật ký", lines=lines, more=more, json=json)


async def static(request: web.Request) -> web.Response:
    found = STATIC.get(request.match_info["name"])
    if found is None:
        raise ApiError(404, "not_found", "no such file")
    body, content_type = found
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "public, max-age=3600",
                                            "X-Content-Type-Options": "nosniff"})


_ID = Param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "a participant's id")
_QID = Param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "a question's id")
_UNIT = Param("unit", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "a unit's code")
_KIND = Param("kind", "path", {"type": "string", "enum": list(FLAG_NAMES)}, "a kind of flag")
_NAME = Param("name", "path", {"type": "string"}, "an asset of the desk")
_FILE = Param("file", "path", {"type": "string"}, "ky-N.xlsx, ky-N.csv (a closed period), chung-cuoc.xlsx or .csv")
_PAGE = (303, 404, 422, 503)
_CHANGE = (303, 403, 404, 422, 503)

ROUTES = (
    Route("get", "/dang-nhap", signin_form, "sign-in: Tên and Mã", 200, content_type=HTML),
    Route("post", "/dang-nhap", signin, "sign in (a session cookie)", 303, errors=(401, 403, 422, 429, 503),
          content_type=HTML),
    Route("post", "/dang-xuat", signout, "sign out (the session ends on the server)", 303, errors=_CHANGE,
          content_type=HTML),
    Route("get", "/", overview_page, "the overview: periods, counts, the scorers' lag and health", 200, errors=_PAGE,
          content_type=HTML),
    Route("get", "/ky/{n}", period_page, "a period: provisional leaders, flags, close, revisions and changes", 200,
          errors=_PAGE, params=(PERIOD,), content_type=HTML),
    Route("get", "/ky/{n}/co/{kind}", flags_page, "every flag of one kind with the entries behind it", 200,
          errors=_PAGE, params=(PERIOD, _KIND), content_type=HTML),
    Route("get", "/ky/{n}/chot", close_confirm, "Chốt kết quả: the confirmation", 200, errors=_PAGE,
          params=(PERIOD,), content_type=HTML),
    Route("post", "/ky/{n}/chot", close, "close the period (in the background, with progress)", 303,
          errors=_CHANGE, params=(PERIOD,), content_type=HTML),
    Route("get", "/ky/{n}/tinh-lai", recompute_form, "Tính lại: the reason and the confirmation", 200, errors=_PAGE,
          params=(PERIOD,), content_type=HTML),
    Route("post", "/ky/{n}/tinh-lai", recompute, "recompute the period (a new revision)", 303, errors=_CHANGE,
          params=(PERIOD,), content_type=HTML),
    Route("get", "/ky/{n}/tien-trinh", progress, "a close's progress", 200, errors=_PAGE, params=(PERIOD,),
          content_type=HTML),
    Route("get", "/loai", disqualify_form, "Loại: the participant, the reason and the confirmation", 200,
          errors=_PAGE, content_type=HTML),
    Route("post", "/loai", disqualify_page, "disqualify a participant", 303, errors=_CHANGE, content_type=HTML),
    Route("get", "/cau-hoi", questions_page, "question statistics, suspected wrong keys first", 200, errors=_PAGE,
          content_type=HTML),
    Route("get", "/cau-hoi/{id}", question_page, "Sửa đáp án: the impact shown before the correction", 200,
          errors=_PAGE, params=(_QID,), content_type=HTML),
    Route("post", "/cau-hoi/{id}", correct, "correct the question's key", 303, errors=_CHANGE, params=(_QID,),
          content_type=HTML),
    Route("get", "/tra-cuu", lookup_form, "the hotline: Tìm by id, CCCD or phone", 200, errors=_PAGE,
          content_type=HTML),
    Route("post", "/tra-cuu", lookup_page, "look a participant up (a POST: never a CCCD in a URL)", 303, errors=_CHANGE,
          content_type=HTML),
    Route("get", "/tra-cuu/{id}", participant_page, "a participant's registration and attempts", 200, errors=_PAGE,
          params=(_ID,), content_type=HTML),
    Route("post", "/tra-cuu/{id}/don-vi", move, "Đổi đơn vị", 303, errors=_CHANGE, params=(_ID,), content_type=HTML),
    Route("post", "/tra-cuu/{id}/ma", reset_key, "Cấp lại mã (shown once)", 201, errors=_CHANGE, params=(_ID,),
          content_type=HTML),
    Route("post", "/tra-cuu/{id}/xoa", erase_page, "Xoá dữ liệu cá nhân (cannot be undone)", 303, errors=_CHANGE,
          params=(_ID,), content_type=HTML),
    Route("get", "/tham-gia", participation_page, "participation against targets, the units below first", 200,
          errors=_PAGE, content_type=HTML),
    Route("get", "/tham-gia/{unit}/nhac-nho.csv", reminders_page, "a unit's list of whom to remind", 200, errors=_PAGE,
          params=(_UNIT,), content_type="text/csv", errors_as=HTML),
    Route("get", "/xuat", exports, "the files of each closed period and the final", 200, errors=_PAGE,
          content_type=HTML),
    Route("get", "/xuat/{file}", export_file, "Kết quả (Excel) / Kết quả (CSV)", 200, errors=_PAGE,
          params=(_FILE,), content_type="application/octet-stream", errors_as=HTML),
    Route("get", "/xuat/ky/{n}/ca-nhan", personal_form, "the winners with personal data: the reason", 200,
          errors=_PAGE, params=(PERIOD,), content_type=HTML),
    Route("post", "/xuat/ky/{n}/ca-nhan", personal_export, "the winners with personal data (recorded)", 200,
          errors=_CHANGE, params=(PERIOD,), content_type="application/octet-stream", errors_as=HTML),
    Route("get", "/nhat-ky", audit_page, "every committee action, newest first", 200, errors=_PAGE, content_type=HTML),
    Route("get", "/static/{name}", static, "the desk's own assets (no CDN)", 200, errors=(404,), params=(_NAME,),
          content_type="text/css"),
)
