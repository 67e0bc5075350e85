"""The committee's HTTP door: admin routes (Bearer admin token) onto the Committee service."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from admin.schemas import AnswerKeyCorrected, AnswerKeyCorrection, Disqualification, Disqualified
from admin.service import Committee, UnknownParticipant, UnknownQuestion
from projections.close import NotClosed, NotDrained, PeriodClosed, PeriodNotEnded
from runtime.routes import PERIOD, Route
from runtime.web import ApiError, decode_body, json_response, period_in_path


@dataclass(frozen=True)
class AdminDoor:
    committee: Committee
    admin_token: str


ADMIN = web.AppKey("admin", AdminDoor)


def _committee(request: web.Request) -> Committee:
    """The service, once the caller has shown the admin token."""
    door = request.app[ADMIN]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), door.admin_token.encode()):
        raise ApiError(401, "unauthorized", "admin actions need Authorization: Bearer <CCHC_ADMIN_TOKEN>")
    return door.committee


def _publishing(action: Callable[[Committee, int], Awaitable[PeriodClosed]], name: str
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler for close or recompute (the same path parameter, the same errors)."""

    async def handler(request: web.Request) -> web.Response:
        committee = _committee(request)
        number = period_in_path(request, committee.contest).number
        try:
            return json_response(await action(committee, number))
        except PeriodNotEnded as e:
            raise ApiError(409, "period_not_ended", str(e)) from e
        except NotClosed as e:
            raise ApiError(409, "not_closed", str(e)) from e
        except NotDrained as e:
            raise ApiError(503, "not_drained", str(e), retry_after=str(e.retry_after)) from e

    handler.__name__ = name
    return handler


close_period = _publishing(Committee.close, "close_period")
recompute_period = _publishing(Committee.recompute, "recompute_period")


async def disqualify(request: web.Request) -> web.Response:
    committee = _committee(request)
    body = await decode_body(request, Disqualification)
    try:
        await committee.disqualify(body.participant_id, body.reason)
    except UnknownParticipant as e:
        raise ApiError(404, "unknown_participant", "no participant with this id") from e
    return json_response(Disqualified(body.participant_id), 202)


async def correct_answer_key(request: web.Request) -> web.Response:
    committee = _committee(request)
    body = await decode_body(request, AnswerKeyCorrection)
    try:
        await committee.correct_answer(body.question_id, body.answer)
    except UnknownQuestion as e:
        raise ApiError(404, "unknown_question", str(e)) from e
    return json_response(AnswerKeyCorrected(body.question_id, body.answer), 202)


ROUTES = (
    Route("post", "/v1/admin/periods/{n}/close", close_period, "close a period: freeze its winners", 200,
          PeriodClosed, errors=(404, 409, 422), params=(PERIOD,), bearer=True),
    Route("post", "/v1/admin/periods/{n}/recompute", recompute_period, "publish a new revision of a closed period",
          200, PeriodClosed, errors=(404, 409, 422), params=(PERIOD,), bearer=True),
    Route("post", "/v1/admin/disqualifications", disqualify, "disqualify a participant", 202, Disqualified,
          Disqualification, errors=(404,), bearer=True),
    Route("post", "/v1/admin/answer-key", correct_answer_key, "correct one answer of the key", 202,
          AnswerKeyCorrected, AnswerKeyCorrection, errors=(404,), bearer=True),
)
