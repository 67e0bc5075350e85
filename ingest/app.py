"""The ingest API: registrations, attempt starts and submissions, each checked and appended as an event."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import msgspec
from aiohttp import web

from contest.identity import (
    IdentityError,
    check_age,
    check_full_name,
    check_id_structure,
    mask_phone,
    normalize_id_number,
    normalize_phone,
    parse_birth_date,
)
from contest.model import Contest, Period
from contest.timefmt import iso_ms
from eventstore.erasure_log import ErasureLog
from eventstore.events import (
    AccessKeyReissued,
    AttemptStarted,
    ParticipantErased,
    ParticipantRegistered,
    SubmissionReceived,
    decode_many,
)
from eventstore.events import encode_many as encode
from eventstore.ids import uuid7
from eventstore.pii import PersonalCopy, PersonalData, PiiVault, Profile, new_access_key, participant_of
from eventstore.redis_stream import participants
from eventstore.redis_stream.personal import AofRewriter
from eventstore.redis_stream.scripts import (
    AttemptRefused,
    ErasureRefused,
    IdentityTaken,
    KeyReused,
    Late,
    Limited,
    RecoveryRefused,
    SubmissionAccepted,
    SubmissionRefused,
    submit_outcome,
)
from eventstore.redis_stream.writer import StreamWriter, WriteId
from ingest import pages
from ingest.contest_view import ContestView
from ingest.schemas import (
    AccessKeyRecovery,
    AttemptRequest,
    AttemptStartedOut,
    ConsentOut,
    ContestOut,
    Credentials,
    Erasure,
    ErasureOut,
    ParticipantMe,
    PeriodHeldOut,
    QuestionOut,
    Receipt,
    ReceiptOut,
    Registration,
    Submission,
)
from ingest.tokens import AttemptClaims, InvalidToken, TokenSigner
from runtime import metrics
from runtime.cached import answer
from runtime.clock import SETTLE_MS, Clock, ClockOutOfStep
from runtime.cors import cors_middleware
from runtime.fastpath import FAST_ROUTES, Answer, FastGet, FastRoute, coroutine_route
from runtime.routes import IDEMPOTENCY_KEY, Route, add_routes, common_routes
from runtime.web import (
    APP_NAME,
    BODY_TIMEOUT,
    MAX_BODY,
    ApiError,
    Call,
    Gate,
    IPNetwork,
    api_middleware,
    bearer_token,
    call_of,
    client_address,
    decode_json,
    json_response,
    limited_client,
    read_body,
)


def _drawing() -> random.Random:
    """A start's own generator, seeded from the OS's: its draw is as unpredictable as SystemRandom's, at one
    system call a start instead of one per question (SystemRandom.sample was ~5 % of ingest at the peak)."""
    return random.Random(secrets.randbits(128))


_START_ERRORS = {"unknown_participant": (404, "no participant with this id"),
                 "invalid_credentials": (401, "this access key is not this participant's"),
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
    ready: Callable[[], Awaitable[None]]
    address_limit: int = 0  # requests a minute per client address on registration, attempts, recovery (0 = off)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    erasure_log: ErasureLog | None = None  # beside the backups (DESIGN §10): every erasure made here is written
    aof: AofRewriter | None = None  # rewrites Valkey's AOF after an erasure (its files then forget the copies)
    banks: dict[str, list[str]] = field(default_factory=dict)  # group → question ids, filled on creation
    results_url: str = ""  # the results page's public address (CCHC_RESULTS_URL): the quiz page's receipt links there
    view: ContestView = field(init=False)  # GET /v1/contest and the quiz page's periods, ready to send
    site: pages.Pages = field(init=False)  # the quiz page's views, rendered once per change of the periods

    def __post_init__(self) -> None:
        self.banks.update({g.code: self.contest.bank(g.code) for g in self.contest.groups})
        view = ContestView(self.contest, self.clock, self.writer.closed_periods)
        object.__setattr__(self, "view", view)
        object.__setattr__(self, "site", pages.Pages(self.contest, view, self.results_url))


INGEST = web.AppKey("ingest", Ingest)


def _ingest(request: web.Request) -> Ingest:
    return request.app[INGEST]


async def _count_address(request: web.Request | Call, ing: Ingest, route: str) -> str:
    """CCHC_ADDRESS_LIMIT: 429 rate_limited with Retry-After past it, before any other work. Returns the
    client address's keyed hash."""
    address = ing.vault.address_hash(limited_client(client_address(request, ing.trusted_proxies)))
    if ing.address_limit <= 0:
        return address
    outcome = await ing.writer.count_request(address, ing.clock.now_ms(), ing.address_limit)
    if isinstance(outcome, Limited):
        metrics.RATE_LIMITED.labels(route).inc()
        raise ApiError(429, "rate_limited", f"too many requests from this address (at most {ing.address_limit} a"
                       " minute); retry later", retry_after=str(outcome.retry_after_s))
    return address


def _identity(raw_id: str, raw_phone: str, raw_birth: str) -> tuple[str, str, date]:
    """CCCD, phone and birth date normalised and checked (422 naming the field)."""
    try:
        id_number = normalize_id_number(raw_id)
        phone = normalize_phone(raw_phone)
        birth = parse_birth_date(raw_birth)
    except IdentityError as e:
        raise ApiError(422, "invalid", f"{e.field}: {e}") from e
    return id_number, phone, birth


_IDEMPOTENCY_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _write_id(request: web.Request | Call, route: str, credential: str, body: bytes) -> WriteId:
    """The write's record (DESIGN §5.7): the client's Idempotency-Key bound to the route and credential,
    else a request id of our own. A malformed key is 422 before anything is written."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return WriteId.fresh()
    if not 16 <= len(key) <= 64 or not set(key) <= _IDEMPOTENCY_KEY_CHARS:
        raise ApiError(422, "invalid", "Idempotency-Key: 16 to 64 URL-safe characters (A-Z a-z 0-9 - _)")
    return WriteId.idempotency(key, route=route, credential=credential, body=body)


_KEY_REUSED = ApiError(422, "invalid", "Idempotency-Key: already used with another body (a new request needs a new key)")
_LATE = ApiError(503, "unavailable", "the store answered too late to record this in time; nothing was recorded, "
                 "retry", retry_after="1")


def _stamp(ing: Ingest, participant_id: str) -> tuple[str, int]:
    """The participant's clock reference and now in its time (DESIGN §3 "one clock"); 503 saying why when
    this process cannot stamp in it."""
    reference = ing.writer.reference_of(participant_id)
    try:
        ing.clock.check(reference)
    except ClockOutOfStep as e:
        raise ApiError(503, "unavailable", str(e), retry_after="1") from e
    return reference, ing.clock.now_ms(reference)


def _consent(contest: Contest, body: Registration) -> str:
    """The accepted notice's version; 422 naming `consent` without it or with another (a contest without a
    [privacy] table asks none)."""
    if contest.privacy is None:
        return ""
    given = body.consent.version if body.consent is not None else None
    if given != contest.privacy.version:
        raise ApiError(422, "invalid", f"consent: the participant must accept the privacy notice version "
                       f"{contest.privacy.version!r} (consent.version)")
    return given


async def register(request: web.Request) -> web.Response:
    ing = _ingest(request)
    address = await _count_address(request, ing, "/v1/participants")
    raw = await read_body(request)
    body = decode_json(raw, Registration)
    contest = ing.contest
    consent_version = _consent(contest, body)
    write = _write_id(request, "/v1/participants", "", raw)
    try:
        name = check_full_name(body.full_name)
        id_number, phone, birth = _identity(body.id_number, body.phone, body.birth_date)
        check_age(birth, contest.first_start(), contest.rules.min_age)
        if contest.rules.id_check == "structure":
            check_id_structure(id_number, birth)
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
    masked = mask_phone(phone)
    id_hash, phone_hash = ing.vault.hash("id", id_number), ing.vault.hash("phone", phone)
    # The participant's own data key seals what the event records; its wrapped copy and the plain values the
    # projections show go in the personal copy, which an erasure destroys (DESIGN §10).
    data_key, wrapped_key = ing.vault.new_data_key(participant_id)
    consent_ms = now if consent_version else 0
    event = ParticipantRegistered(
        v=2, participant_id=participant_id, group=group.code, unit_code=unit, registered_ms=now,
        pii=data_key.seal(PersonalData(id_number, phone, body.birth_date, name)),
        consent_version=consent_version, consent_ms=consent_ms)
    personal = PersonalCopy(wrapped_key, name, masked, id_hash, phone_hash, address)
    access_key = new_access_key(participant_id)
    profile = Profile(name, birth.isoformat(), masked, now, consent_version, consent_ms)
    outcome = await ing.writer.register(
        write, id_hash, phone_hash, participant_id, f"{group.code}|{unit or ''}",
        ing.vault.access_hash(access_key), ing.vault.seal_key(access_key), ing.vault.hash("birth", birth.isoformat()),
        data_key.seal_profile(profile), msgspec.msgpack.encode(personal), encode([event]))
    if isinstance(outcome, KeyReused):
        raise _KEY_REUSED
    if isinstance(outcome, IdentityTaken):
        metrics.REGISTRATIONS.labels("duplicate_identity").inc()
        raise ApiError(409, "duplicate_identity", f"{outcome.field}: already registered (one person, one account)")
    metrics.REGISTRATIONS.labels("registered").inc()
    if outcome.participant_id != participant_id:  # the first run's answer, kept
        access_key = ing.vault.open_key(outcome.sealed_key)
    return json_response(Credentials(outcome.participant_id, access_key), 201)


async def recover_access_key(request: web.Request) -> web.Response:
    """A lost access key: CCCD, phone and birth date together give a new one; the old one stops working."""
    ing = _ingest(request)
    await _count_address(request, ing, "/v1/participants/access-key")
    raw = await read_body(request)
    body = decode_json(raw, AccessKeyRecovery)
    write = _write_id(request, "/v1/participants/access-key", "", raw)
    id_number, phone, birth = _identity(body.id_number, body.phone, body.birth_date)
    id_hash = ing.vault.hash("id", id_number)
    keys: dict[str, str] = {}

    def new_key(participant_id: str) -> tuple[str, bytes, bytes]:
        keys[participant_id] = key = new_access_key(participant_id)
        event = encode([AccessKeyReissued(participant_id=participant_id, at_ms=ing.clock.now_ms())])
        return ing.vault.access_hash(key), ing.vault.seal_key(key), event

    outcome = await ing.writer.reissue_access_key(
        write, id_hash, ing.vault.hash("phone", phone), ing.vault.hash("birth", birth.isoformat()), new_key)
    if isinstance(outcome, KeyReused):
        raise _KEY_REUSED
    if isinstance(outcome, RecoveryRefused):
        if outcome.reason == "rate_limited":
            raise ApiError(429, "rate_limited", "too many recoveries for this identity; retry later",
                           retry_after=str(outcome.retry_after_s))
        raise ApiError(401, "invalid_credentials", "no participant with this id_number, phone and birth_date")
    return json_response(Credentials(outcome.participant_id, ing.vault.open_key(outcome.sealed_key)))


def _attempt_out(ing: Ingest, event: AttemptStarted, group: str, unit_code: str | None) -> AttemptStartedOut:
    """An attempt as its start answered it (a kept answer and a resume rebuild the same from its event)."""
    contest, tz = ing.contest, ing.contest.tz
    claims = AttemptClaims(event.attempt_id, event.participant_id, group, unit_code, event.period, event.started_ms,
                           event.question_ids)
    questions = [QuestionOut(q.id, q.text, q.options) for q in (contest.questions[i] for i in event.question_ids)]
    return AttemptStartedOut(event.attempt_id, ing.signer.sign(claims), event.period, iso_ms(event.started_ms, tz),
                             iso_ms(event.started_ms + contest.rules.time_limit_seconds * 1000, tz), questions)


def _started(raw_event: bytes) -> AttemptStarted:
    event = decode_many(raw_event)[0]
    assert isinstance(event, AttemptStarted)  # the script keeps only the events ingest made
    return event


async def start_answer(ing: Ingest, call: Call) -> Answer:
    """POST /v1/attempts from the connection (build_app's fast route): counted, then started."""
    await _count_address(call, ing, "/v1/attempts")
    return await _start(ing, call)


async def start_attempt(request: web.Request) -> web.Response:
    """POST /v1/attempts through aiohttp (what the fast path leaves): counted before its body is read, so that a
    slow or oversized body from an address past its limit is refused at once, and counted all the same."""
    ing = _ingest(request)
    await _count_address(request, ing, "/v1/attempts")
    return _response(*await _start(ing, await call_of(request)))


async def _start(ing: Ingest, call: Call) -> Answer:
    """An attempt started for the participant the body names, with its access key and Idempotency-Key."""
    raw = call.body
    body = decode_json(raw, AttemptRequest)
    access_key = bearer_token(call)
    if not access_key:
        raise ApiError(401, "invalid_credentials", "starting an attempt needs Authorization: Bearer <access_key>")
    write = _write_id(call, "/v1/attempts", body.participant_id, raw)
    contest, rules = ing.contest, ing.contest.rules
    _, now = _stamp(ing, body.participant_id)
    period = contest.period_at(now)
    if period is None:
        raise ApiError(403, "period_not_open", "no contest period is open now")
    attempt_id = uuid7(now)
    draw = _drawing()
    drawn = {code: draw.sample(bank, rules.questions_per_attempt) for code, bank in ing.banks.items()}
    events = {code: encode([AttemptStarted(attempt_id=attempt_id, participant_id=body.participant_id,
                                           period=period.number, started_ms=now, question_ids=ids)])
              for code, ids in drawn.items()}
    outcome = await ing.writer.start_attempt(
        write, body.participant_id, ing.vault.access_hash(access_key), period.number, rules.attempts_per_period,
        attempt_id, now + SETTLE_MS, rules.time_limit_seconds + rules.grace_seconds, events)
    if isinstance(outcome, KeyReused):
        raise _KEY_REUSED
    if isinstance(outcome, Late):
        raise _LATE
    if isinstance(outcome, AttemptRefused):
        metrics.ATTEMPTS.labels(outcome.reason).inc()
        status, message = _START_ERRORS[outcome.reason]
        raise ApiError(status, outcome.reason, message)
    metrics.ATTEMPTS.labels("started").inc()
    return 201, msgspec.json.encode(_attempt_out(ing, _started(outcome.event), outcome.group, outcome.unit_code))


def _signed_in(ing: Ingest, request: web.Request | Call) -> tuple[str, str]:
    """The participant an access key names and the key's hash; 401 without one."""
    access_key = bearer_token(request)
    participant_id = participant_of(access_key) if access_key else None
    if access_key is None or participant_id is None:
        raise ApiError(401, "invalid_credentials", "this needs Authorization: Bearer <access_key>")
    return participant_id, ing.vault.access_hash(access_key)


_WRONG_KEY = ApiError(401, "invalid_credentials", "this access key is not valid (a newer one replaced it?)")
PRIVATE = (("Cache-Control", "no-store"),)  # an answer for one participant's eyes (a token, their data)


async def current_answer(ing: Ingest, call: Call) -> Answer:
    """GET /v1/attempts/current: the participant's attempt still open (a resume on another device or after a
    crash), whichever way it came; its 200 is PRIVATE."""
    participant_id, access_hash = _signed_in(ing, call)
    found = await participants.current_attempt(ing.writer.client, ing.writer.keys, participant_id, access_hash)
    if isinstance(found, participants.WrongKey):
        raise _WRONG_KEY
    event = _started(found.event) if found is not None else None
    rules, now = ing.contest.rules, ing.clock.now_ms(ing.writer.reference_of(participant_id))
    if found is None or event is None or ing.contest.period_at(now) != ing.contest.period(event.period) \
            or now > event.started_ms + (rules.time_limit_seconds + rules.grace_seconds) * 1000:
        raise ApiError(404, "no_open_attempt", "no attempt of this participant is open now")
    group, _, unit = found.info.partition("|")
    return 200, msgspec.json.encode(_attempt_out(ing, event, group, unit or None))


async def current_attempt(request: web.Request) -> web.Response:
    """GET /v1/attempts/current through aiohttp: what the fast path leaves (HEAD, a query string, CORS)."""
    return _response(*await current_answer(_ingest(request), Call(request.headers, request.remote)), PRIVATE)


def _response(status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=dict(headers))


async def participant_me(request: web.Request) -> web.Response:
    """What the service holds about the participant (the right of access), live, also during a freeze."""
    ing = _ingest(request)
    participant_id, access_hash = _signed_in(ing, request)
    contest, tz = ing.contest, ing.contest.tz
    found = await participants.held(ing.writer.client, ing.writer.keys, participant_id, access_hash,
                                    [p.number for p in contest.periods])
    if isinstance(found, participants.WrongKey):
        raise _WRONG_KEY
    if found.personal:  # sealed under the participant's data key; before data keys, under CCHC_PII_KEY
        wrapped = msgspec.msgpack.decode(found.personal, type=PersonalCopy).wrapped_key
        profile = ing.vault.data_key(wrapped, participant_id).open_profile(found.profile)
    else:
        profile = ing.vault.open_profile(found.profile)
    group, _, unit_code = found.info.partition("|")
    unit = contest.units.get(unit_code) if unit_code else None
    periods = []
    for number, held in found.periods.items():
        receipts = [msgspec.json.decode(r, type=Receipt) for r in held.receipts]
        periods.append(PeriodHeldOut(number, len(held.attempt_ids), [
            ReceiptOut(r.attempt_id, r.submission_id, r.received_at, r.duration_ms) for r in receipts]))
    consent = ConsentOut(profile.consent_version, iso_ms(profile.consent_ms, tz)) if profile.consent_version else None
    return _private(json_response(ParticipantMe(
        participant_id, profile.full_name, group, unit_code or None, unit.name if unit else None, profile.phone_masked,
        profile.birth_date, iso_ms(profile.registered_ms, tz), consent, periods)))


def _private(response: web.Response) -> web.Response:
    """An answer for one participant's eyes (their data): kept by no cache."""
    response.headers.update(PRIVATE)
    return response


async def contest_summary(request: web.Request) -> web.Response:
    """What a front-end shows before sign-in, each period with its status: from memory, with an ETag (a
    browser revalidates it with a 304 of a few bytes)."""
    view = _ingest(request).view
    return answer(request, view.answer(await view.statuses()), "application/json", "no-cache")


async def erase_me(request: web.Request) -> web.Response:
    """The participant erases their personal data (DESIGN §10): their data key is destroyed with the event
    that records it, so what the event record holds sealed is unreadable at once; their name leaves every
    answer made afterwards (the projections follow the event); the access key stops working. Their entries
    and prizes stand."""
    ing = _ingest(request)
    raw = await read_body(request)
    if not decode_json(raw, Erasure).confirm:  # part of the schema step: before the credential
        raise ApiError(422, "invalid", "confirm: must be true (erasing personal data cannot be undone)")
    participant_id, access_hash = _signed_in(ing, request)
    write = _write_id(request, "/v1/participants/me/erasure", participant_id, raw)
    at_ms = ing.clock.now_ms()
    event = encode([ParticipantErased(participant_ids=[participant_id], at_ms=at_ms, by="participant",
                                      reason="the participant's own request")])
    outcome = await ing.writer.erase(write, [participant_id], event, at_ms, access_hash=access_hash)
    if isinstance(outcome, KeyReused):
        raise _KEY_REUSED
    if isinstance(outcome, ErasureRefused):
        raise _WRONG_KEY
    metrics.ERASURES.labels("participant" if outcome.newly else "repeated").inc()
    # Also for a repeat: its first run's reply may have been lost before these steps (a line twice is harmless).
    await erased_here(ing, [participant_id], outcome.at_ms, "participant")
    return json_response(ErasureOut(participant_id, iso_ms(outcome.at_ms, ing.contest.tz)), 202)


async def erased_here(ing: Ingest, participant_ids: list[str], at_ms: int, by: str) -> None:
    """After an erasure this process made: the line in the erasure log beside the backups (so no restore
    brings the data back), and Valkey's AOF rewritten (so its files forget the deleted copies)."""
    if ing.erasure_log is not None:
        await ing.erasure_log.record(participant_ids, at_ms, by)
    if ing.aof is not None:
        ing.aof.request()


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


def begin_submission(ing: Ingest, raw: bytes) -> asyncio.Future[Any]:
    """A submission's checks, its receipt and event, queued for the next batch: the script's reply as a
    future (submission_answer reads it). Called once the whole body is here: that is when it is received
    (headers sent early gain nothing), stamped in the participant's reference time (DESIGN §3)."""
    body = decode_json(raw, Submission)
    try:
        claims = ing.signer.verify(body.token)
    except InvalidToken as e:
        raise ApiError(401, "invalid_token", str(e)) from e
    period = ing.contest.period(claims.period)
    if period is None:
        raise ApiError(401, "invalid_token", "the token names a period this contest does not have")
    _, received_ms = _stamp(ing, claims.participant_id)
    duration_ms = received_ms - claims.started_ms
    if duration_ms < 0:  # only a clock reading off by more than the attempt's age: never ranked, retry
        raise ApiError(503, "unavailable", "this server's clock is behind the attempt's start; retry", retry_after="1")
    tz = ing.contest.tz
    refusal = _refusal(claims, body, period, ing.contest, received_ms)
    receipt = Receipt(uuid7(received_ms), claims.attempt_id, iso_ms(received_ms, tz), duration_ms)
    event = b"" if refusal else encode([SubmissionReceived(
        submission_id=receipt.submission_id, attempt_id=claims.attempt_id,
        participant_id=claims.participant_id, group=claims.group, unit_code=claims.unit_code,
        period=claims.period, started_ms=claims.started_ms, received_ms=received_ms,
        question_ids=claims.question_ids, answers=dict(body.answers), prediction=body.prediction)])
    return ing.writer.submit_soon(claims.participant_id, claims.attempt_id, refusal, msgspec.json.encode(receipt),
                                  event, received_ms + SETTLE_MS)


def submission_answer(reply: Any) -> tuple[int, bytes]:
    """The script's reply as (status, receipt): 202 accepted, 200 a repeat (the original receipt); a
    refusal raises its error."""
    outcome = submit_outcome(reply)
    if isinstance(outcome, Late):
        metrics.SUBMISSIONS.labels("late").inc()
        raise _LATE
    if isinstance(outcome, SubmissionRefused):
        metrics.SUBMISSIONS.labels(outcome.reason).inc()
        status, message = _SUBMIT_ERRORS[outcome.reason]
        raise ApiError(status, outcome.reason, message)
    accepted = isinstance(outcome, SubmissionAccepted)
    (_ACCEPTED if accepted else _REPEATED).inc()
    return 202 if accepted else 200, outcome.receipt


async def submit(request: web.Request) -> web.Response:
    """POST /v1/submissions through aiohttp: what the fast path leaves (a slow or chunked body, a
    pipelined request, HTTP/1.0; runtime/fastpath.py) — the same steps."""
    ing = _ingest(request)
    status, body = submission_answer(await begin_submission(ing, await read_body(request)))
    return web.Response(body=body, status=status, content_type="application/json")


_ACCEPTED = metrics.SUBMISSIONS.labels("accepted")  # labelled once: the hot path only counts
_REPEATED = metrics.SUBMISSIONS.labels("duplicate")


async def _ready(request: web.Request) -> None:
    await _ingest(request).ready()  # Redis only: no replica staleness to tell


MAX_IN_FLIGHT = 4096  # per process; beyond it requests are refused at once rather than queued


ROUTES = (
    Route("get", "/v1/contest", contest_summary, "what a front-end shows before sign-in: rules, periods with their"
          " status, groups, units, the privacy notice (cacheable: ETag, revalidated with If-None-Match)", 200,
          ContestOut),
    Route("post", "/v1/participants", register, "register a participant: answers its access key, shown once", 201,
          Credentials, Registration, errors=(403, 409, 429), params=(IDEMPOTENCY_KEY,)),
    Route("post", "/v1/participants/access-key", recover_access_key, "a new access key for a participant who lost"
          " theirs (CCCD, phone and birth date); the old key stops working", 200, Credentials, AccessKeyRecovery,
          errors=(401, 429), params=(IDEMPOTENCY_KEY,)),
    Route("post", "/v1/attempts", start_attempt, "start an attempt: the server draws its questions", 201,
          AttemptStartedOut, AttemptRequest, errors=(401, 403, 404, 409, 429), bearer=True,
          params=(IDEMPOTENCY_KEY,)),
    Route("get", "/v1/attempts/current", current_attempt, "the participant's attempt still open (neither submitted"
          " nor past its deadline and grace), as its start answered it: a resume on another device", 200,
          AttemptStartedOut, errors=(404,), bearer=True),
    Route("get", "/v1/participants/me", participant_me, "what the service holds about the participant (the right"
          " of access), live", 200, ParticipantMe, bearer=True),
    Route("post", "/v1/participants/me/erasure", erase_me, "erase the participant's personal data (it cannot be"
          " undone): their CCCD, phone, birth date and name can no longer be read anywhere; their access key stops"
          " working; their entries and prizes stand", 202, ErasureOut, Erasure, bearer=True,
          params=(IDEMPOTENCY_KEY,)),
    Route("post", "/v1/submissions", submit, "submit an attempt's answers (a repeat answers 200 with the original"
          " receipt)", 202, Receipt, Submission, errors=(401, 403, 410), also=(200,)),
)


def build_app(ingest: Ingest | None, *, routes: tuple[Route, ...] = (), extra_ctx: list[Any] | None = None,
              max_in_flight: int = MAX_IN_FLIGHT, body_timeout_s: float = 10.0,
              fast_path: bool = True, allowed_origins: tuple[str, ...] = ()) -> web.Application:
    """The app; `ingest` may be None when a startup context in `extra_ctx` provides it. `routes`
    are mounted beside ingest's own (the wiring adds the committee's admin routes), and the quiz page's
    (ingest/pages.py). With `fast_path`, submissions are also a fast route (runtime/fastpath.py) for servers
    that run it (runtime/serve.py). `allowed_origins` (CCHC_ALLOWED_ORIGINS) may call the API from a browser."""
    gate = Gate(max_in_flight)
    origins = frozenset(allowed_origins)
    middlewares = [cors_middleware(origins), api_middleware(gate)] if origins else [api_middleware(gate)]
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    app[APP_NAME] = "ingest"
    app[BODY_TIMEOUT] = body_timeout_s
    name = app[APP_NAME]
    fast: dict[str, FastRoute | FastGet] = {
        "/v1/submissions": FastRoute("/v1/submissions", lambda call: begin_submission(app[INGEST], call.body),
                                     submission_answer, name, gate, origins),
        "/v1/attempts": coroutine_route("/v1/attempts", lambda call: start_answer(app[INGEST], call), name, gate,
                                        cors=origins),
        "/v1/attempts/current": coroutine_route("/v1/attempts/current", lambda call: current_answer(app[INGEST], call),
                                                name, gate, cors=origins, method="GET", headers=PRIVATE),
        **pages.fast_gets(lambda: app[INGEST].site, name, origins)}
    app[FAST_ROUTES] = fast if fast_path else {}
    if ingest is not None:
        app[INGEST] = ingest
    site = pages.routes(lambda request: _ingest(request).site)
    add_routes(app, [*ROUTES, *routes, *site, *common_routes("cchc-scoring ingest", _ready)])
    for ctx in extra_ctx or []:
        app.cleanup_ctx.append(ctx)
    return app
