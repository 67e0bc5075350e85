"""The committee's JSON door (DESIGN §6 "Desk"): every action and read of the Committee service as a route
under /v1/admin/, for scripts (Bearer admin token) and the desk's own script (its session and CSRF token).
It translates arguments and the service's refusals only."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from admin.schemas import (
    AnswerKeyCorrected,
    AnswerKeyCorrection,
    AuditOut,
    ChangesOut,
    ClosingOut,
    Disqualification,
    Disqualified,
    ErasedOut,
    ErasureRequest,
    ExportRequest,
    FlagCasesOut,
    FlagsOut,
    ImpactOut,
    KeyOut,
    KeyReset,
    Lookup,
    LookupOut,
    Moved,
    Overview,
    ParticipantOut,
    ParticipationOut,
    QuestionsOut,
    RemindersOut,
    RevisionsOut,
    UnitMove,
    WhyBody,
)
from admin.service import Committee
from admin.sessions import Sessions
from contest.timefmt import iso_ms
from projections.close import PeriodClosed
from runtime.errors import Conflict, Invalid, NotFound, NotYet, Refusal
from runtime.routes import PERIOD, PERIOD_QUERY, Param, Route
from runtime.web import (
    ApiError,
    decode_body,
    decode_json,
    json_response,
    period_in_path,
    period_in_query,
    read_body,
    whole_number,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Door:
    """What the desk app holds: the service, who may use it, and its servers' readiness."""

    committee: Committee
    sessions: Sessions
    data_dir: Path  # where files are written before they are sent
    ready: Callable[[], Awaitable[float | None]]

DOOR = web.AppKey("desk", Door)

# The service's refusals as HTTP answers, by kind: the one place the door translates errors.
STATUS: dict[type[Refusal], int] = {NotFound: 404, Conflict: 409, Invalid: 422, NotYet: 503}


def status_of(e: Refusal) -> int:
    return next((s for kind, s in STATUS.items() if isinstance(e, kind)), 409)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except Refusal as e:
        raise ApiError(status_of(e), e.code, str(e),
                       retry_after=None if e.retry_after is None else str(e.retry_after)) from e


async def _caller(request: web.Request, *, changes: bool = False) -> tuple[Committee, str]:
    door = request.app[DOOR]
    return door.committee, await door.sessions.organiser(request, changes=changes)


async def _optional(request: web.Request, kind: type[T]) -> T:
    """A body that may be left out (then its defaults)."""
    raw = await read_body(request)
    return kind() if not raw.strip() else decode_json(raw, kind)


def _number(request: web.Request, name: str, low: int = 1) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = whole_number(raw, 2**31)
    if value is None or value < low:
        raise ApiError(422, "invalid", f"{name}: must be a whole number, at least {low}")
    return value


# -- closing ---------------------------------------------------------------------------------------

async def close_period(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    number = period_in_path(request, committee.contest).number
    body = await _optional(request, WhyBody)
    with translated():
        return json_response(await committee.close(number, by=by, reason=body.reason))


async def recompute_period(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    number = period_in_path(request, committee.contest).number
    body = await _optional(request, WhyBody)
    with translated():
        return json_response(await committee.recompute(number, by=by, reason=body.reason))


async def close_progress(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    number = period_in_path(request, committee.contest).number
    job = committee.job(number)
    if job is None:
        raise ApiError(404, "no_close_running", f"no close or recompute of period {number} started in this desk")
    return json_response(ClosingOut.of(job))


async def revisions(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    number = period_in_path(request, committee.contest).number
    with translated():
        return json_response(RevisionsOut(number, await committee.revisions(number)))


async def prize_changes(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    number = period_in_path(request, committee.contest).number
    with translated():
        published = await committee.revisions(number)
        if not published:
            raise ApiError(409, "not_closed", f"period {number} is not closed")
        after = _number(request, "to") or published[-1].revision
        before = _number(request, "from") or max(1, after - 1)
        return json_response(ChangesOut(number, before, after, await committee.changes(number, before, after)))


# -- before publishing -----------------------------------------------------------------------------

async def period_flags(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    number = period_in_path(request, committee.contest).number
    return json_response(FlagsOut(number, await committee.flags(number)))


async def flag_cases(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    number = period_in_path(request, committee.contest).number
    return json_response(FlagCasesOut(number, await committee.flag_cases(number)))


async def questions(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    period = period_in_query(request, committee.contest)
    number = period.number if period else None
    return json_response(QuestionsOut(number, await committee.questions(number)))


async def correction_impact(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    question, answer = request.query.get("question_id", ""), request.query.get("answer", "")
    if answer not in ("A", "B", "C", "D"):
        raise ApiError(422, "invalid", "answer: one of A, B, C, D")
    with translated():
        impact = await committee.correction_impact(question, answer)  # type: ignore[arg-type]
        return json_response(ImpactOut(question, await committee.current_key(question), answer, impact))


# -- corrections -----------------------------------------------------------------------------------

async def disqualify(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    body = await decode_body(request, Disqualification)
    with translated():
        await committee.disqualify(body.participant_id, body.reason, by=by)
    return json_response(Disqualified(body.participant_id), 202)


async def correct_answer_key(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    body = await decode_body(request, AnswerKeyCorrection)
    with translated():
        await committee.correct_answer(body.question_id, body.answer, by=by, reason=body.reason)
    return json_response(AnswerKeyCorrected(body.question_id, body.answer), 202)


async def move_participant(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    body = await decode_body(request, UnitMove)
    with translated():
        return json_response(await committee.move(body.participant_id, body.unit_code, by=by, reason=body.reason), 202)


async def reset_access_key(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)
    body = await decode_body(request, KeyReset)
    with translated():
        issued = await committee.reset_key(body.participant_id, by=by, reason=body.reason)
    response = json_response(KeyOut(issued.participant_id, issued.access_key), 201)
    response.headers["Cache-Control"] = "no-store"  # shown once
    return response


async def erase(request: web.Request) -> web.Response:
    """The committee erases a participant's personal data (DESIGN §10); the event records who, why and when."""
    committee, by = await _caller(request, changes=True)
    body = await decode_body(request, ErasureRequest)
    with translated():
        at_ms = await committee.erase(body.participant_id, body.reason, by=by)
    return json_response(ErasedOut(body.participant_id, iso_ms(at_ms, committee.contest.tz)), 202)


# -- the hotline -----------------------------------------------------------------------------------

async def lookup(request: web.Request) -> web.Response:
    committee, by = await _caller(request, changes=True)  # a look-up by CCCD or phone is recorded
    body = await decode_body(request, Lookup)
    with translated():
        found, kind = await committee.find(body.query, by=by, reason=body.reason)
    return json_response(LookupOut(found, kind))


async def participant(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    with translated():
        file = await committee.participant(request.match_info["id"])
    return json_response(ParticipantOut(file.registration, file.attempts))


# -- participation, exports, the overview and the audit ------------------------------------------------

async def participation(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    period = period_in_query(request, committee.contest)
    number = period.number if period else None
    return json_response(ParticipationOut(number, await committee.participation(number)))


async def reminders(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    period = period_in_query(request, committee.contest)
    number = period.number if period else None
    with translated():
        people = await committee.reminders(request.match_info["unit"], number)
    return json_response(RemindersOut(request.match_info["unit"], number, people))


async def export(request: web.Request) -> web.StreamResponse:
    door = request.app[DOOR]
    _, by = await _caller(request, changes=True)
    body = await decode_body(request, ExportRequest)
    return await send_export(request, door, body, by)


async def send_export(request: web.Request, door: Door, body: ExportRequest, by: str) -> web.StreamResponse:
    """Write the file in the desk's data directory, send it, remove it (pages and routes alike)."""
    committee = door.committee
    door.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=door.data_dir, prefix="export-") as tmp:
        final = body.period == "final"
        suffix = "-ca-nhan" if body.personal_data_reason is not None else "-cong-khai" if body.public else ""
        name = f"{committee.contest.slug}-{'chung-cuoc' if final else 'ky-' + body.period}{suffix}.{body.format}"
        out = Path(tmp) / name
        with translated():
            if final:
                await committee.export_final(out, fmt=body.format)
            else:
                number = whole_number(body.period, 2**31) or 0
                await committee.export_period(number, out, fmt=body.format, by=by, revision=body.revision,
                                              public=body.public, personal_reason=body.personal_data_reason)
        response = web.StreamResponse(headers={
            "Content-Type": CONTENT_TYPES[body.format], "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store", "Content-Length": str(out.stat().st_size)})
        await response.prepare(request)
        with out.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                await response.write(chunk)
        await response.write_eof()
        return response


CONTENT_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "csv": "text/csv; charset=utf-8"}


async def overview(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    result: Overview = await committee.overview()
    return json_response(result)


async def audit(request: web.Request) -> web.Response:
    committee, _ = await _caller(request)
    limit = min(_number(request, "limit") or 100, 500)
    return json_response(AuditOut(await committee.audit(limit)))


_ID = Param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "the participant's id")
_UNIT = Param("unit", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "a unit's code")
_FROM = Param("from", "query", {"type": "integer", "minimum": 1}, "the earlier revision (default: the one before)")
_TO = Param("to", "query", {"type": "integer", "minimum": 1}, "the later revision (default: the latest)")
_QUESTION = Param("question_id", "query", {"type": "string"}, "the question whose key would change")
_ANSWER = Param("answer", "query", {"type": "string", "enum": ["A", "B", "C", "D"]}, "the corrected answer")
_LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1}, "how many (at most 500)")
_ANY = (404, 422)

ROUTES = (
    Route("post", "/v1/admin/periods/{n}/close", close_period, "close a period: freeze its winners (body {reason?})",
          200, PeriodClosed, WhyBody, errors=(403, 404, 409, 422), params=(PERIOD,), bearer=True, body_required=False),
    Route("post", "/v1/admin/periods/{n}/recompute", recompute_period, "publish a new revision of a closed period",
          200, PeriodClosed, WhyBody, errors=(403, 404, 409, 422), params=(PERIOD,), bearer=True, body_required=False),
    Route("get", "/v1/admin/periods/{n}/close", close_progress, "the progress of a close or recompute the desk runs",
          200, ClosingOut, errors=_ANY, params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/periods/{n}/revisions", revisions, "every published revision: digest, who, why", 200,
          RevisionsOut, errors=_ANY, params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/periods/{n}/changes", prize_changes, "what changed in the prize list between two"
          " revisions", 200, ChangesOut, errors=(404, 409, 422), params=(PERIOD, _FROM, _TO), bearer=True),
    Route("get", "/v1/admin/periods/{n}/flags", period_flags, "what the committee reviews before publishing: too"
          " fast, shared addresses, copied entries", 200, FlagsOut, errors=_ANY, params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/periods/{n}/flag-cases", flag_cases, "the flags with the entries behind each", 200,
          FlagCasesOut, errors=_ANY, params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/questions", questions, "per question: drawn, answered right, overall and among the"
          " strongest entries; likely wrong keys", 200, QuestionsOut, errors=_ANY, params=(PERIOD_QUERY,),
          bearer=True),
    Route("get", "/v1/admin/answer-key/impact", correction_impact, "how many valid entries of each period a key"
          " correction would change", 200, ImpactOut, errors=_ANY, params=(_QUESTION, _ANSWER), bearer=True),
    Route("post", "/v1/admin/disqualifications", disqualify, "disqualify a participant", 202, Disqualified,
          Disqualification, errors=(403, 404), bearer=True),
    Route("post", "/v1/admin/erasures", erase, "erase a participant's personal data (a request received by other"
          " means; it cannot be undone): their CCCD, phone, birth date and name can no longer be read anywhere, their"
          " access key stops working, their entries and prizes stand", 202, ErasedOut, ErasureRequest,
          errors=(403, 404), bearer=True),
    Route("post", "/v1/admin/answer-key", correct_answer_key, "correct one answer of the key", 202,
          AnswerKeyCorrected, AnswerKeyCorrection, errors=(403, 404), bearer=True),
    Route("post", "/v1/admin/unit-moves", move_participant, "move a participant to another unit", 202, Moved,
          UnitMove, errors=(403, 404, 409), bearer=True),
    Route("post", "/v1/admin/access-keys", reset_access_key, "a new access key for a participant (shown once;"
          " 409 participant_erased once their personal data is erased)", 201, KeyOut, KeyReset, errors=(403, 404, 409),
          bearer=True),
    Route("post", "/v1/admin/lookups", lookup, "find a participant by id, CCCD or phone (recorded for the last two)",
          200, LookupOut, Lookup, errors=(403, 404), bearer=True),
    Route("get", "/v1/admin/participants/{id}", participant, "a participant's registration (masked) and attempts:"
          " whether each counted, and why not", 200, ParticipantOut, errors=(404,), params=(_ID,), bearer=True),
    Route("get", "/v1/admin/participation", participation, "every unit against its target", 200, ParticipationOut,
          errors=_ANY, params=(PERIOD_QUERY,), bearer=True),
    Route("get", "/v1/admin/participation/{unit}/reminders", reminders, "a unit's participants without an entry:"
          " names and masked phones", 200, RemindersOut, errors=_ANY, params=(_UNIT, PERIOD_QUERY), bearer=True),
    Route("post", "/v1/admin/exports", export, "a closed period's file (or the final's); personal data only with a"
          " reason, recorded", 200, None, ExportRequest, errors=(403, 404, 409, 422), bearer=True,
          content_type=CONTENT_TYPES["xlsx"]),
    Route("get", "/v1/admin/overview", overview, "periods, counts, the scorers' lag and health", 200, Overview,
          bearer=True),
    Route("get", "/v1/admin/audit", audit, "every committee action, newest first", 200, AuditOut, errors=(422,),
          params=(_LIMIT,), bearer=True),
)
