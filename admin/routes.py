"""The committee's HTTP door: admin routes (Bearer admin token) onto the Committee service."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from admin.schemas import (
    AnswerKeyCorrected,
    AnswerKeyCorrection,
    Disqualification,
    Disqualified,
    ErasedOut,
    ErasureRequest,
    FlagsOut,
    QuestionsOut,
)
from admin.service import Committee
from contest.timefmt import iso_ms
from projections.close import PeriodClosed
from runtime.errors import Conflict, Invalid, NotFound, NotYet, Refusal
from runtime.routes import PERIOD, PERIOD_QUERY, Route
from runtime.web import ApiError, bearer_token, decode_body, json_response, period_in_path, period_in_query


@dataclass(frozen=True)
class AdminDoor:
    committee: Committee
    tokens: dict[str, str]  # admin token → the organiser's name, recorded in the events they cause


ADMIN = web.AppKey("admin", AdminDoor)


def _committee(request: web.Request) -> tuple[Committee, str]:
    """The service and the organiser's name, once the caller has shown an admin token."""
    door = request.app[ADMIN]
    given = (bearer_token(request) or "").encode("utf-8", "surrogateescape")
    name = next((n for token, n in door.tokens.items() if hmac.compare_digest(given, token.encode())), None)
    if name is None:
        raise ApiError(401, "unauthorized", "admin actions need Authorization: Bearer <an admin token>")
    return door.committee, name


# The service's refusals as HTTP answers, by kind: the one place the door translates errors.
_STATUS: dict[type[Refusal], int] = {NotFound: 404, Conflict: 409, Invalid: 422, NotYet: 503}


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except Refusal as e:
        status = next((s for kind, s in _STATUS.items() if isinstance(e, kind)), 409)
        raise ApiError(status, e.code, str(e), retry_after=None if e.retry_after is None else str(e.retry_after)) from e


async def close_period(request: web.Request) -> web.Response:
    committee, by = _committee(request)
    with _translated():
        return json_response(await committee.close(period_in_path(request, committee.contest).number, by=by))


async def recompute_period(request: web.Request) -> web.Response:
    committee, by = _committee(request)
    with _translated():
        return json_response(await committee.recompute(period_in_path(request, committee.contest).number, by=by))


async def period_flags(request: web.Request) -> web.Response:
    committee, _ = _committee(request)
    number = period_in_path(request, committee.contest).number
    return json_response(FlagsOut(number, await committee.flags(number)))


async def questions(request: web.Request) -> web.Response:
    committee, _ = _committee(request)
    period = period_in_query(request, committee.contest)
    number = period.number if period else None
    return json_response(QuestionsOut(number, await committee.questions(number)))


async def disqualify(request: web.Request) -> web.Response:
    committee, by = _committee(request)
    body = await decode_body(request, Disqualification)
    with _translated():
        await committee.disqualify(body.participant_id, body.reason, by=by)
    return json_response(Disqualified(body.participant_id), 202)


async def correct_answer_key(request: web.Request) -> web.Response:
    committee, by = _committee(request)
    body = await decode_body(request, AnswerKeyCorrection)
    with _translated():
        await committee.correct_answer(body.question_id, body.answer, by=by, reason=body.reason)
    return json_response(AnswerKeyCorrected(body.question_id, body.answer), 202)


async def erase(request: web.Request) -> web.Response:
    """The committee erases a participant's personal data (DESIGN §10); the event records who, why and when."""
    committee, by = _committee(request)
    body = await decode_body(request, ErasureRequest)
    with _translated():
        at_ms = await committee.erase(body.participant_id, body.reason, by=by)
    return json_response(ErasedOut(body.participant_id, iso_ms(at_ms, committee.contest.tz)), 202)


ROUTES = (
    Route("post", "/v1/admin/periods/{n}/close", close_period, "close a period: freeze its winners", 200,
          PeriodClosed, errors=(404, 409, 422), params=(PERIOD,), bearer=True),
    Route("post", "/v1/admin/periods/{n}/recompute", recompute_period, "publish a new revision of a closed period",
          200, PeriodClosed, errors=(404, 409, 422), params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/periods/{n}/flags", period_flags, "what the committee reviews before publishing: too"
          " fast, shared addresses, copied entries", 200, FlagsOut, errors=(404, 422), params=(PERIOD,), bearer=True),
    Route("get", "/v1/admin/questions", questions, "per question: drawn, answered right, overall and among the"
          " strongest entries; likely wrong keys", 200, QuestionsOut, errors=(404, 422), params=(PERIOD_QUERY,),
          bearer=True),
    Route("post", "/v1/admin/disqualifications", disqualify, "disqualify a participant", 202, Disqualified,
          Disqualification, errors=(404,), bearer=True),
    Route("post", "/v1/admin/erasures", erase, "erase a participant's personal data (a request received by other"
          " means; it cannot be undone): their CCCD, phone, birth date and name can no longer be read anywhere, their"
          " access key stops working, their entries and prizes stand", 202, ErasedOut, ErasureRequest, errors=(404,),
          bearer=True),
    Route("post", "/v1/admin/answer-key", correct_answer_key, "correct one answer of the key", 202,
          AnswerKeyCorrected, AnswerKeyCorrection, errors=(404,), bearer=True),
)
