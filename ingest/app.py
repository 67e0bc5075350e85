"""The ingest API: registration, attempts and submissions appended as events, plus admin actions."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from contest.identity import (
    IdentityError,
    check_age,
    check_full_name,
    check_id_number,
    mask_phone,
    normalize_phone,
    parse_birth_date,
)
from contest.model import Contest, Period
from contest.timefmt import iso_ms
from eventstore.events import (
    AnswerKeyCorrected,
    AttemptStarted,
    ParticipantDisqualified,
    ParticipantRegistered,
    SubmissionReceived,
)
from eventstore.events import encode_many as encode
from eventstore.ids import uuid7
from eventstore.redis_stream import StreamWriter
from ingest.pii import PersonalData, PiiVault
from ingest.schemas import (
    AnswerKeyCorrection,
    AttemptRequest,
    AttemptStartedOut,
    Disqualification,
    QuestionOut,
    Receipt,
    Registered,
    Registration,
    Submission,
)
from ingest.tokens import AttemptClaims, InvalidToken, TokenSigner
from ops import metrics
from ops.clock import Clock
from ops.openapi import openapi_document
from ops.web import (
    APP_NAME,
    MAX_BODY,
    ApiError,
    add_common_routes,
    decode_body,
    error_middleware,
    json_response,
    overload_guard,
    period_in_path,
)
from projections.close import Closer, NotClosed, NotDrained, PeriodNotEnded

_draw = secrets.SystemRandom()
_START_ERRORS = {"unknown_participant": (404, "no participant with this id"),
                 "disqualified": (403, "this participant is disqualified"),
                 "attempt_limit": (409, "no attempts left in this period"),
                 "unknown_group": (422, "the participant's group is not in this contest")}


@dataclass(frozen=True)
class Ingest:
    """Everything the ingest handlers use, built once per process."""

    contest: Contest
    writer: StreamWriter
    signer: TokenSigner
    vault: PiiVault
    clock: Clock
    admin_token: str
    closer: Closer
    ready: Callable[[], Awaitable[None]]
    banks: dict[str, list[str]] = field(default_factory=dict)  # group → question ids, filled on creation

    def __post_init__(self) -> None:
        self.banks.update({g.code: self.contest.bank(g.code) for g in self.contest.groups})


INGEST = web.AppKey("ingest", Ingest)


def _ingest(request: web.Request) -> Ingest:
    return request.app[INGEST]


async def register(request: web.Request) -> web.Response:
    ing = _ingest(request)
    body = await decode_body(request, Registration)
    contest = ing.contest
    try:
        name = check_full_name(body.full_name)
        id_number = check_id_number(body.id_number)
        phone = normalize_phone(body.phone)
        birth = parse_birth_date(body.birth_date)
        check_age(birth, contest.first_start(), contest.rules.min_age)
    except IdentityError as e:
        raise ApiError(422, "invalid", f"{e.field}: {e}") from e
    group = contest.group(body.group)
    if group is None:
        raise ApiError(422, "invalid", f"group: unknown group {body.group!r}")
    unit = body.unit_code or None
    if unit is None and group.counts_for_units:
        raise ApiError(422, "invalid", f"unit_code: required for group {group.code!r}")
    if unit is not None and unit not in contest.units:
        raise ApiError(422, "invalid", f"unit_code: unknown unit {unit!r}")
    if id_number in contest.excluded:
        metrics.REGISTRATIONS.labels("excluded").inc()
        raise ApiError(403, "excluded", "this person is on the contest's excluded list")
    now = ing.clock.now_ms()
    participant_id = uuid7(now)
    event = ParticipantRegistered(
        participant_id=participant_id, group=group.code, unit_code=unit, display_name=name,
        phone_masked=mask_phone(phone), id_hash=ing.vault.hash("id", id_number),
        phone_hash=ing.vault.hash("phone", phone),
        pii=ing.vault.seal(PersonalData(id_number, phone, body.birth_date)), registered_ms=now)
    outcome = await ing.writer.register(event.id_hash, event.phone_hash, participant_id,
                                        f"{group.code}|{unit or ''}", encode([event]))
    if outcome.status != "ok":
        metrics.REGISTRATIONS.labels("duplicate_identity").inc()
        field = outcome.values[0]
        raise ApiError(409, "duplicate_identity", f"{field}: already registered (one person, one account)")
    metrics.REGISTRATIONS.labels("registered").inc()
    return json_response(Registered(participant_id), 201)


async def start_attempt(request: web.Request) -> web.Response:
    ing = _ingest(request)
    body = await decode_body(request, AttemptRequest)
    contest, rules = ing.contest, ing.contest.rules
    now = ing.clock.now_ms()
    period = contest.period_at(now)
    if period is None:
        raise ApiError(403, "period_not_open", "no contest period is open now")
    attempt_id = uuid7(now)
    drawn = {code: _draw.sample(bank, rules.questions_per_attempt) for code, bank in ing.banks.items()}
    events = {code: encode([AttemptStarted(attempt_id=attempt_id, participant_id=body.participant_id,
                                           period=period.number, started_ms=now, question_ids=ids)])
              for code, ids in drawn.items()}
    outcome = await ing.writer.start_attempt(body.participant_id, period.number,
                                             rules.attempts_per_period, events)
    metrics.ATTEMPTS.labels("started" if outcome.status == "ok" else outcome.values[0]).inc()
    if outcome.status != "ok":
        status, message = _START_ERRORS[outcome.values[0]]
        raise ApiError(status, outcome.values[0], message)
    group, _, unit = outcome.values[0].partition("|")
    claims = AttemptClaims(attempt_id, body.participant_id, group, unit or None, period.number, now,
                           drawn[group])
    tz = contest.tz
    questions = [QuestionOut(q.id, q.text, q.options) for q in (contest.questions[i] for i in drawn[group])]
    out = AttemptStartedOut(attempt_id, ing.signer.sign(claims), period.number, iso_ms(now, tz),
                            iso_ms(now + rules.time_limit_seconds * 1000, tz), questions)
    return json_response(out, 201)


def _refusal(claims: AttemptClaims, body: Submission, period: Period, contest: Contest,
             received_ms: int) -> str:
    """Why this submission cannot count ('' when it can), in DESIGN §6's order."""
    rules = contest.rules
    if received_ms >= period.end_ms:
        return "period_closed"
    if received_ms > claims.started_ms + (rules.time_limit_seconds + rules.grace_seconds) * 1000:
        return "deadline_passed"
    if not set(body.answers) <= set(claims.question_ids):
        return "invalid"
    return ""


_SUBMIT_ERRORS = {"period_closed": (403, "the attempt's period ended before this submission arrived"),
                  "deadline_passed": (410, "the attempt's time limit (plus grace) has passed"),
                  "invalid": (422, "answers: answers name questions outside this attempt")}


async def submit(request: web.Request) -> web.Response:
    ing = _ingest(request)
    received_ms = ing.clock.now_ms()
    body = await decode_body(request, Submission)
    try:
        claims = ing.signer.verify(body.token)
    except InvalidToken as e:
        raise ApiError(401, "invalid_token", str(e)) from e
    period = ing.contest.period(claims.period)
    if period is None:
        raise ApiError(401, "invalid_token", "the token names a period this contest does not have")
    tz = ing.contest.tz
    refusal = _refusal(claims, body, period, ing.contest, received_ms)
    receipt = Receipt(uuid7(received_ms), claims.attempt_id, iso_ms(received_ms, tz))
    event = b"" if refusal else encode([SubmissionReceived(
        submission_id=receipt.submission_id, attempt_id=claims.attempt_id,
        participant_id=claims.participant_id, group=claims.group, unit_code=claims.unit_code,
        period=claims.period, started_ms=claims.started_ms, received_ms=received_ms,
        question_ids=claims.question_ids, answers=dict(body.answers), prediction=body.prediction)])
    outcome = await ing.writer.submit(claims.attempt_id, refusal, msgspec.json.encode(receipt), event)
    metrics.SUBMISSIONS.labels({"ok": "accepted", "dup": "duplicate"}.get(outcome.status, outcome.values[0])).inc()
    if outcome.status == "err":
        status, message = _SUBMIT_ERRORS[outcome.values[0]]
        raise ApiError(status, outcome.values[0], message)
    return web.Response(body=outcome.values[0].encode(), status=202 if outcome.status == "ok" else 200,
                        content_type="application/json")


def _require_admin(request: web.Request) -> Ingest:
    ing = _ingest(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), ing.admin_token.encode()):
        raise ApiError(401, "unauthorized", "admin actions need Authorization: Bearer <CCHC_ADMIN_TOKEN>")
    return ing


async def close_period(request: web.Request) -> web.Response:
    return await _publish(request, recompute=False)


async def recompute_period(request: web.Request) -> web.Response:
    return await _publish(request, recompute=True)


async def _publish(request: web.Request, *, recompute: bool) -> web.Response:
    ing = _require_admin(request)
    number = period_in_path(request, ing.contest).number
    try:
        published = await (ing.closer.recompute(number) if recompute else ing.closer.close(number))
    except PeriodNotEnded as e:
        raise ApiError(409, "period_not_ended", str(e)) from e
    except NotClosed as e:
        raise ApiError(409, "not_closed", str(e)) from e
    except NotDrained as e:
        raise ApiError(503, "not_drained", str(e), retry_after=str(e.retry_after)) from e
    return json_response(published)


async def record_correction(ing: Ingest, question_id: str, answer: str) -> None:
    """Append an answer-key correction (the caller checked the question exists)."""
    await ing.writer.append(encode([AnswerKeyCorrected(question_id=question_id, answer=answer,
                                                       at_ms=ing.clock.now_ms())]))


async def record_disqualification(ing: Ingest, participant_id: str, reason: str) -> bool:
    """Append a disqualification; False when there is no such participant."""
    if await ing.writer.participant_info(participant_id) is None:
        return False
    # The event first: if the second write fails, the record still says it and the
    # projections honour it; the SADD only stops new attempts early.
    await ing.writer.append(encode([ParticipantDisqualified(participant_id=participant_id, reason=reason,
                                                            at_ms=ing.clock.now_ms())]))
    await ing.writer.disqualify(participant_id)
    return True


async def correct_answer_key(request: web.Request) -> web.Response:
    ing = _require_admin(request)
    body = await decode_body(request, AnswerKeyCorrection)
    if body.question_id not in ing.contest.questions:
        raise ApiError(404, "unknown_question", f"no question {body.question_id!r} in this contest")
    await record_correction(ing, body.question_id, body.answer)
    return json_response({"question_id": body.question_id, "answer": body.answer}, 202)


async def disqualify(request: web.Request) -> web.Response:
    ing = _require_admin(request)
    body = await decode_body(request, Disqualification)
    if not await record_disqualification(ing, body.participant_id, body.reason):
        raise ApiError(404, "unknown_participant", "no participant with this id")
    return json_response({"participant_id": body.participant_id, "status": "disqualified"}, 202)


async def _ready(request: web.Request) -> None:
    await _ingest(request).ready()


MAX_IN_FLIGHT = 4096  # per process; beyond it requests are refused at once rather than queued


def build_app(ingest: Ingest | None, *, extra_ctx: list[Any] | None = None,
              max_in_flight: int = MAX_IN_FLIGHT) -> web.Application:
    """The app; `ingest` may be None when a startup context in `extra_ctx` provides it."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware, overload_guard(max_in_flight)])
    app[APP_NAME] = "ingest"
    if ingest is not None:
        app[INGEST] = ingest
    app.router.add_post("/v1/participants", register)
    app.router.add_post("/v1/attempts", start_attempt)
    app.router.add_post("/v1/submissions", submit)
    app.router.add_post("/v1/admin/periods/{n}/close", close_period)
    app.router.add_post("/v1/admin/periods/{n}/recompute", recompute_period)
    app.router.add_post("/v1/admin/disqualifications", disqualify)
    app.router.add_post("/v1/admin/answer-key", correct_answer_key)
    add_common_routes(app, _ready, openapi_document("ingest"))
    for ctx in extra_ctx or []:
        app.cleanup_ctx.append(ctx)
    return app
