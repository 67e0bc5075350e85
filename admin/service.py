"""The committee's actions as one service: close, recompute, disqualify, correct the answer key, move a
participant to another unit, reissue an access key, the hotline's look-up, the exports; and what the
committee reads before acting (flags, question statistics, a correction's impact, revisions and their
differences, participation, the audit). Three doors call it — the CLI (ops/cli.py), the JSON routes
(admin/routes.py) and the desk's pages (admin/pages.py) — and only translate arguments and errors: every
refusal is one of runtime.errors' Refusal family, every change an event naming who did it and why.

Erasure (issue 24) is admin.erasure's, called through `erase` and `forget_expired` here like any action.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog

from admin import export as files
from admin.erasure import Erasures, Forgotten, UnknownParticipant
from admin.flags import period_flags
from admin.questions import question_report
from contest.flags import Flag, FlagCase
from contest.identity import IdentityError, normalize_id_number, normalize_phone
from contest.model import Choice, Contest, Period
from contest.participation import UnitParticipation, participation
from contest.questions import CorrectionImpact, ImpactTally, QuestionStat
from contest.ranking import Entry, counted_entries
from contest.revisions import PrizeChange, prize_changes
from eventstore.events import (
    AccessKeyReset,
    AnswerKeyCorrected,
    AnyEvent,
    CommitteeRead,
    ParticipantDisqualified,
    ParticipantErased,
    ParticipantMoved,
    encode_many,
)
from eventstore.pii import PiiVault, new_access_key
from eventstore.postgres import committee_events, connection, results_markers
from eventstore.redis_stream.desk import DeskStore, HeldAttempt
from eventstore.redis_stream.inspection import Streams
from eventstore.redis_stream.scripts import ErasedParticipant, NoSuchParticipant
from eventstore.redis_stream.writer import StreamWriter
from projections import desk_queries
from projections.close import Closer, NotDrained, PeriodClosed, UnknownPeriod
from projections.desk_queries import EntryRow, Registration, Reminder
from projections.live_queries import NEVER, LiveQueries, Standing, answer_key, display_names
from projections.results_queries import ResultsQueries, RevisionRow
from runtime.clock import Clock
from runtime.errors import Conflict, Invalid, NotFound, Refusal, Unavailable

log = structlog.get_logger()
MAX_REASON = 1000


__all__ = ["Committee", "UnknownParticipant", "UnknownQuestion"]


class UnknownQuestion(NotFound):
    """No question with this id in the contest."""

    code = "unknown_question"


class UnknownUnit(NotFound):
    """No unit with this code in the contest."""

    code = "unknown_unit"


class UnknownRevision(NotFound):
    code = "unknown_revision"


class Erased(Conflict):
    """The participant's personal data was erased: they get no new access key."""

    code = "participant_erased"


class SameUnit(Conflict):
    """The participant is in that unit already."""

    code = "same_unit"


class ReasonNeeded(Invalid):
    """The action records why: a reason is required."""

    code = "invalid"


class CloseRunning(Conflict):
    code = "close_running"


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ReasonNeeded("reason: say why (it is recorded with your name)")
    if len(reason) > MAX_REASON:
        raise ReasonNeeded(f"reason: at most {MAX_REASON} characters")
    return reason


# -- what the desk shows ----------------------------------------------------------------------------

Phase = Literal["waiting", "draining", "computing", "serving", "done", "failed"]


@dataclass
class CloseJob:
    """A close or recompute running in this process, for the desk to follow (DESIGN §6b: progress)."""

    period: int
    recompute: bool
    by: str
    started_ms: int
    phase: Phase = "waiting"
    phase_ms: int = 0
    result: PeriodClosed | None = None
    error: str | None = None
    error_code: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.phase not in ("done", "failed")


class GroupCount(msgspec.Struct, frozen=True):
    group: str
    participants: int


class PeriodLine(msgspec.Struct, frozen=True):
    number: int
    name: str
    status: str
    start_ms: int
    end_ms: int
    revision: int | None
    entries: int  # valid entries, every group
    participants: list[GroupCount]  # with an entry, per group


class StreamLine(msgspec.Struct, frozen=True):
    name: str
    lag: int
    pending: int
    oldest_unprocessed_s: float
    dead_letters: int
    scorer: str | None


class Overview(msgspec.Struct, frozen=True):
    now_ms: int
    periods: list[PeriodLine]
    streams: list[StreamLine]
    scorers: dict[str, float]  # scorer → seconds since its last heartbeat
    next_cutoff_ms: int | None


class Revision(msgspec.Struct, frozen=True):
    revision: int
    results_digest: str
    created_ms: int
    by: str
    reason: str


class AttemptLine(msgspec.Struct, frozen=True):
    """One attempt as the hotline explains it: did it count, and if not why."""

    period: int
    attempt_id: str
    submission_id: str | None
    received_ms: int | None
    score: int | None
    duration_ms: int | None
    counted: bool
    why_not: str | None  # disqualified | not_best | not_scored_yet | not_submitted | not_in_result


class ParticipantFile(msgspec.Struct, frozen=True):
    registration: Registration
    attempts: list[AttemptLine]


class AuditLine(msgspec.Struct, frozen=True):
    key: tuple[int, int, int, int]
    at_ms: int
    by: str
    what: str  # the event's kind
    reason: str
    subject: str  # what it was about: a participant, a question, a period
    detail: str
    subject_name: str = ""  # the participant's name, when it is about one


class Moved(msgspec.Struct, frozen=True):
    participant_id: str
    from_unit: str | None
    unit_code: str


class KeyIssued(msgspec.Struct, frozen=True):
    participant_id: str
    access_key: str  # shown once to the staff member, never stored plain


Found = tuple[str, Literal["participant_id", "id_number", "phone"]]


class Committee:
    def __init__(self, contest: Contest, writer: StreamWriter, closer: Closer, clock: Clock, *,
                 vault: PiiVault | None = None, desk: DeskStore | None = None,
                 retention_s: int = 30 * 86_400, erasures: Erasures | None = None) -> None:
        self.contest = contest
        self.writer = writer
        self.closer = closer
        self.clock = clock
        self.vault = vault
        self.desk = desk or DeskStore(writer.client, writer.keys)
        self.retention_s = retention_s
        self.erasures = erasures or Erasures(contest, writer, closer.pool, clock)
        self.live = LiveQueries(closer.pool)
        self.published = ResultsQueries(closer.pool)
        self.jobs: dict[int, CloseJob] = {}

    @property
    def pool(self) -> Any:
        return self.closer.pool

    def _period(self, number: int) -> Period:
        period = self.contest.period(number)
        if period is None:
            raise UnknownPeriod(f"no period {number} in this contest")
        return period

    async def _append(self, event: AnyEvent, participant_id: str | None = None) -> None:
        await self.writer.append(encode_many([event]), participant_id=participant_id)

    # -- closing ------------------------------------------------------------------------------------

    async def close(self, period: int, *, by: str, reason: str = "",
                    progress: Callable[[str], None] | None = None) -> PeriodClosed:
        """Freeze a period's results once every entry received before its end is projected (idempotent);
        the period's attempt counters (and, after the last close, the receipts) then expire after the
        retention."""
        closed = await self.closer.close(period, by=by, reason=reason, **({"progress": progress} if progress else {}))
        await self.writer.record_closed(period)  # the quiz page's status of the period (ingest reads Redis only)
        revisions = await self.closer.results.latest_revisions()
        await self.writer.expire_closed(period, contest_closed=len(revisions) == len(self.contest.periods),
                                        retention_s=self.retention_s)
        return closed

    async def recompute(self, period: int, *, by: str, reason: str = "",
                        progress: Callable[[str], None] | None = None) -> PeriodClosed:
        """A new revision of a closed period from the events as they stand now."""
        return await self.closer.recompute(period, by=by, reason=reason,
                                           **({"progress": progress} if progress else {}))

    def start_close(self, period: int, *, by: str, reason: str = "", recompute: bool = False,
                    patience_s: float = 300.0) -> CloseJob:
        """A close (or recompute) run in the background of this process, its progress in `job(period)`:
        the desk's button. While requests received before the end may still land or the scorers are
        behind (NotDrained) it waits and tries again, up to `patience_s`."""
        self._period(period)
        running = self.jobs.get(period)
        if running is not None and running.running:
            return running
        if recompute:
            reason = _reason(reason)
        job = CloseJob(period, recompute, by, self.clock.now_ms())

        def step(phase: str) -> None:
            job.phase, job.phase_ms = phase, self.clock.now_ms()  # type: ignore[assignment]

        async def run() -> None:
            deadline = asyncio.get_running_loop().time() + patience_s
            try:
                while True:
                    try:
                        act = self.recompute if recompute else self.close
                        job.result = await act(period, by=by, reason=reason, progress=step)
                        step("done")
                        return
                    except NotDrained as e:
                        if asyncio.get_running_loop().time() > deadline:
                            raise
                        step("waiting")
                        await asyncio.sleep(min(float(e.retry_after or 1), 2.0))
            except Refusal as e:
                job.error, job.error_code = str(e), e.code
                step("failed")
            except Unavailable as e:
                job.error, job.error_code = f"a server is unavailable: {e}", "unavailable"
                step("failed")
            except Exception as e:  # a bug: logged, and the desk says so instead of spinning forever
                log.exception("close_job_failed", period=period)
                job.error, job.error_code = f"internal error: {type(e).__name__}", "internal"
                step("failed")

        job.task = asyncio.create_task(run(), name=f"close {period}")
        self.jobs[period] = job
        return job

    def job(self, period: int) -> CloseJob | None:
        return self.jobs.get(period)

    async def revisions(self, period: int) -> list[Revision]:
        """Every published revision of a period, with who published it and why."""
        self._period(period)
        rows: list[RevisionRow] = await self.published.revisions(period)
        markers = await results_markers(self.pool, period)
        return [Revision(r.revision, r.results_digest, r.created_ms,
                         markers[r.revision].by if r.revision in markers else "",
                         markers[r.revision].reason if r.revision in markers else "") for r in rows]

    async def prizes(self, period: int, revision: int | None = None) -> dict[str, Any] | None:
        """A revision's /prizes document (the latest without `revision`), None when not closed."""
        self._period(period)
        result = await self.published.result(period, revision)
        if result is None:
            if revision is not None and await self.published.result(period) is not None:
                raise UnknownRevision(f"period {period} has no revision {revision}")
            return None
        document: dict[str, Any] = json.loads(result.prizes)
        document["results_digest"] = result.results_digest
        return document

    async def changes(self, period: int, before: int, after: int) -> list[PrizeChange]:
        """What changed in the prize list from revision `before` to `after`."""
        old, new = await self.prizes(period, before), await self.prizes(period, after)
        if old is None or new is None:
            raise UnknownRevision(f"period {period} has no revisions {before} and {after}")
        return prize_changes(old, new, [g.code for g in self.contest.groups])

    # -- before publishing ---------------------------------------------------------------------------

    async def flags(self, period: int) -> list[Flag]:
        """What to review before publishing a period: too fast, shared addresses, copied entries."""
        self._period(period)
        return await period_flags(self.live, self.contest, period)

    async def flag_cases(self, period: int) -> list[FlagCase]:
        """The same flags with the entries behind each."""
        self._period(period)
        return await desk_queries.flag_cases(self.pool, period, self.contest.rules.min_plausible_seconds)

    async def leaders(self, period: int, extra: int = 10) -> dict[str, list[Standing]]:
        """Per group, the provisional leaders for its prize places, and those tied with the last place's score
        (the prediction's tie-break is unknown until the close), up to `extra` more."""
        self._period(period)
        out = {}
        for group in self.contest.groups:
            places = sum(p.count for p in group.prizes)
            rows = await self.live.live_leaderboard(period, group.code, places + extra, 0, NEVER)
            last = rows[places - 1].score if len(rows) >= places else None
            out[group.code] = [r for i, r in enumerate(rows) if i < places or r.score == last]
        return out

    async def questions(self, period: int | None) -> list[QuestionStat]:
        """Per question: drawn, answered right, overall and among the strongest entries; likely wrong keys."""
        if period is not None:
            self._period(period)
        return await question_report(self.live, self.contest, period)

    async def correction_impact(self, question_id: str, answer: Choice) -> list[CorrectionImpact]:
        """How many valid entries of each period a key correction would change (disqualified participants'
        apart): shown before the correction is made."""
        if question_id not in self.contest.questions:
            raise UnknownQuestion(f"no question {question_id!r} in this contest")
        async with connection(self.pool) as conn:
            key = await answer_key(conn, self.contest)
        tally = ImpactTally(question_id, key[question_id], answer)
        async for period, answers, disqualified in desk_queries.answer_sheets(self.pool, question_id):
            tally.add(period, answers, disqualified)
        return tally.impact(p.number for p in self.contest.periods)

    async def current_key(self, question_id: str) -> str:
        async with connection(self.pool) as conn:
            return (await answer_key(conn, self.contest))[question_id]

    # -- corrections ---------------------------------------------------------------------------------

    async def disqualify(self, participant_id: str, reason: str, *, by: str) -> None:
        reason = _reason(reason)
        if await self.writer.participant_info(participant_id) is None:
            raise UnknownParticipant("no participant with this id")
        # The event first: if the second write fails, the record still says it and the
        # projections honour it; the set only stops new attempts early.
        await self._append(ParticipantDisqualified(participant_id=participant_id, reason=reason,
                                                   at_ms=self.clock.now_ms(), by=by),
                           participant_id)  # in the participant's partition: ordered with its entries
        await self.writer.disqualify(participant_id)

    async def correct_answer(self, question_id: str, answer: Choice, *, by: str, reason: str = "") -> None:
        if question_id not in self.contest.questions:
            raise UnknownQuestion(f"no question {question_id!r} in this contest")
        await self._append(AnswerKeyCorrected(question_id=question_id, answer=answer, at_ms=self.clock.now_ms(),
                                              by=by, reason=reason))

    async def move(self, participant_id: str, unit_code: str, *, by: str, reason: str) -> Moved:
        """Move a participant to another unit (DESIGN §3 "Corrections"): from the periods not yet closed on,
        entries already made in an open one included; a closed period keeps the old unit until recomputed."""
        reason = _reason(reason)
        if unit_code not in self.contest.units:
            raise UnknownUnit(f"no unit {unit_code!r} in this contest")
        info = await self.desk.info(participant_id)
        if info is None:
            raise UnknownParticipant("no participant with this id")
        former = info.partition("|")[2]
        if (former or None) == unit_code:
            raise SameUnit(f"the participant is in {unit_code} already")
        event = ParticipantMoved(participant_id=participant_id, unit_code=unit_code, from_unit=former or None,
                                 at_ms=self.clock.now_ms(), by=by, reason=reason)
        outcome = await self.writer.move(participant_id, unit_code, encode_many([event]))
        if isinstance(outcome, NoSuchParticipant):
            raise UnknownParticipant("no participant with this id")
        return Moved(participant_id, former or None, unit_code)

    async def reset_key(self, participant_id: str, *, by: str, reason: str) -> KeyIssued:
        """A new access key for a participant who lost theirs and proved who they are to the hotline; the
        old one stops working. The key is shown once, to the staff member."""
        reason = _reason(reason)
        vault = self._vault()
        key = new_access_key(participant_id)
        event = AccessKeyReset(participant_id=participant_id, at_ms=self.clock.now_ms(), by=by, reason=reason)
        outcome = await self.writer.reset_access_key(participant_id, vault.access_hash(key), encode_many([event]),
                                                     vault.seal_key(key))
        if isinstance(outcome, NoSuchParticipant):
            raise UnknownParticipant("no participant with this id")
        if isinstance(outcome, ErasedParticipant):
            raise Erased("this participant's personal data was erased: no new access key")
        return KeyIssued(participant_id, key)

    async def erase(self, participant_id: str, reason: str, *, by: str) -> int:
        """Erase a participant's personal data (a request the committee received by other means, DESIGN §10):
        their CCCD, phone, birth date and name can no longer be read anywhere, their access key stops working,
        their entries and prizes stand. Returns when it was erased (ms; the first time, if it was before).
        The event records who, why and when."""
        return await self.erasures.erase(participant_id, _reason(reason), by=by)

    async def forget_expired(self, *, by: str) -> Forgotten:
        """`cchc forget --expired`: once every period is closed, erased participants' identity claims go;
        `retention_days` after the last close, everyone's personal data (admin.erasure)."""
        return await self.erasures.forget_expired(by=by)

    def _vault(self) -> PiiVault:
        if self.vault is None:
            raise Unavailable("this process has no CCHC_PII_KEY")
        return self.vault

    # -- the hotline ---------------------------------------------------------------------------------

    async def find(self, query: str, *, by: str, reason: str = "") -> Found:
        """The participant a hotline search names: a participant id, a CCCD or a phone number (the last two
        by their keyed hash, each such look-up recorded without the value: DESIGN §10 "who read what")."""
        query = query.strip()
        if not query:
            raise Invalid("query: a participant id, a CCCD (12 digits) or a phone number")
        kind: Literal["participant_id", "id_number", "phone"] = "participant_id"
        found: str | None
        digits = "".join(c for c in query if c.isdigit())
        if digits and len(digits) >= 9 and all(c.isdigit() or c in " .-+()" for c in query):
            vault = self._vault()
            reason = _reason(reason)
            try:
                value, kind = normalize_id_number(query), "id_number"
                found = await self.desk.participant_by("id", vault.hash("id", value))
            except IdentityError:
                try:
                    value, kind = normalize_phone(query), "phone"
                except IdentityError as e:
                    raise Invalid("query: not a CCCD (12 digits) nor a phone number (10 digits from 0)") from e
                found = await self.desk.participant_by("phone", vault.hash("phone", value))
            await self._append(CommitteeRead(what=f"lookup_{kind}", subject=found or "", at_ms=self.clock.now_ms(),
                                             by=by, reason=reason))
        else:
            found = query if await self.desk.info(query) is not None else None
        if found is None:
            raise UnknownParticipant(f"no participant with this {kind.replace('_', ' ')}")
        return found, kind

    async def participant(self, participant_id: str) -> ParticipantFile:
        """A participant's registration (masked) and every attempt: whether it counted, and if not, why."""
        registration = await desk_queries.registration(self.pool, participant_id)
        info = await self.desk.info(participant_id)
        if registration is None:
            if info is not None:  # registered, not projected yet
                raise Unavailable("the registration is not scored yet; try again in a moment")
            raise UnknownParticipant("no participant with this id")
        if info is not None:  # ingest's record has a move at once; the read model once the scorers archive it
            registration = msgspec.structs.replace(registration, unit_code=info.partition("|")[2] or None)
        periods = [p.number for p in self.contest.periods]
        entries = await desk_queries.entries_of(self.pool, participant_id, periods)
        held = await self.desk.attempts(participant_id, periods)
        closed = await self.published.latest_revisions()
        lines: list[AttemptLine] = []
        for number in periods:
            mine = [e for e in entries if e.period == number]
            counted = await self._counted(number, closed.get(number), participant_id, mine,
                                          registration.disqualified_reason is not None)
            lines += self._attempt_lines(number, mine, held.get(number, []), counted,
                                         registration.disqualified_reason is not None, number in closed)
        return ParticipantFile(registration, lines)

    async def _counted(self, period: int, revision: int | None, participant_id: str, mine: list[EntryRow],
                       disqualified: bool) -> str | None:
        """The attempt that counts: in the published result once closed, else the selection's pick now."""
        if revision is not None:
            row = await self.published.standing(period, revision, participant_id)
            return row.attempt_id if row else None
        if disqualified or not mine:
            return None
        rules = self.contest.rules
        pick = counted_entries([Entry(e.attempt_id, participant_id, "", e.unit_code, e.score, e.correct, e.questions,
                                      e.duration_ms, e.prediction, e.submitted_ms) for e in mine],
                               rules.attempt_selection, None, rules.prediction_mode)
        return pick[0].attempt_id if pick else None

    @staticmethod
    def _attempt_lines(period: int, mine: list[EntryRow], held: list[HeldAttempt], counted: str | None,
                       disqualified: bool, closed: bool) -> list[AttemptLine]:
        scored = {e.attempt_id: e for e in mine}
        order = [h.attempt_id for h in held] + [a for a in scored if a not in {h.attempt_id for h in held}]
        receipts = {h.attempt_id: h.receipt for h in held}
        lines = []
        for attempt_id in order:
            e = scored.get(attempt_id)
            if e is not None:
                why = None if attempt_id == counted else "not_best" if counted is not None else \
                    "disqualified" if disqualified else "not_in_result" if closed else "not_best"
                lines.append(AttemptLine(period, attempt_id, e.submission_id, e.submitted_ms, e.score, e.duration_ms,
                                         attempt_id == counted, why))
            elif receipts.get(attempt_id):
                receipt = json.loads(receipts[attempt_id] or b"{}")
                lines.append(AttemptLine(period, attempt_id, receipt.get("submission_id"), None, None,
                                         receipt.get("duration_ms"), False, "not_scored_yet"))
            else:
                lines.append(AttemptLine(period, attempt_id, None, None, None, None, False, "not_submitted"))
        return lines

    # -- participation -------------------------------------------------------------------------------

    async def participation(self, period: int | None) -> list[UnitParticipation]:
        """Every unit against its target (live: the committee sees no freeze)."""
        if period is not None:
            self._period(period)
        counts = await self.live.participants_per_unit(period, sorted(self.contest.counting_groups()))
        return participation(self.contest, counts)

    async def reminders(self, unit_code: str, period: int | None) -> list[Reminder]:
        """Whom a unit reminds: its registered participants (and its sub-units') of the counting groups without
        an entry in the period (or in the contest) — names and masked phones only."""
        if unit_code not in self.contest.units:
            raise UnknownUnit(f"no unit {unit_code!r} in this contest")
        if period is not None:
            self._period(period)
        tree = [u for u in self.contest.units if unit_code in self.contest.lineage(u)]
        return await desk_queries.not_taken_part(self.pool, tree, sorted(self.contest.counting_groups()), period)

    # -- files ---------------------------------------------------------------------------------------

    async def export_period(self, period: int, out: Path, *, fmt: str, by: str, revision: int | None = None,
                            public: bool = False, personal_reason: str | None = None) -> int:
        """A closed period's file (admin.export); with `personal_reason`, the winners' CCCD, phone and birth
        date, recorded first (who, why, when: DESIGN §10)."""
        self._period(period)
        vault = None
        if personal_reason is not None:
            reason = _reason(personal_reason)
            if public or fmt != "xlsx":
                raise Invalid("personal data comes only in the committee's Excel copy of a period")
            vault = self._vault()
            await self._append(CommitteeRead(what="personal_data_export", subject=str(period),
                                             at_ms=self.clock.now_ms(), by=by, reason=reason))
        return await files.export(self.live, self.published, self.contest, period, out, fmt=fmt, revision=revision,
                                  vault=vault, public=public)

    async def export_final(self, out: Path, *, fmt: str) -> int:
        counts = await self.live.participants_per_unit(None, sorted(self.contest.counting_groups()))
        return await files.export_final(self.published, self.contest, participation(self.contest, counts), out,
                                        fmt=fmt)

    # -- the overview and the audit ----------------------------------------------------------------

    async def overview(self) -> Overview:
        now = self.clock.now_ms()
        closed = await self.published.latest_revisions()
        entries, people = await desk_queries.period_counts(self.pool)
        periods = [PeriodLine(p.number, p.name, self.contest.status(p, now, p.number in closed), p.start_ms, p.end_ms,
                              closed.get(p.number), entries.get(p.number, 0),
                              [GroupCount(g.code, people.get((p.number, g.code), 0)) for g in self.contest.groups])
                   for p in self.contest.periods]
        streams_view = Streams(self.writer.client, self.writer.keys)
        progress = await streams_view.progress()
        streams = [StreamLine("contest" if g.stream < 0 else str(g.stream), g.lag, g.pending,
                              0.0 if g.oldest_unprocessed_ms is None else max(0.0, (now - g.oldest_unprocessed_ms) / 1000),
                              g.dead_letters, g.lease) for g in progress.streams]
        beats = {c: max(0.0, (now - ms) / 1000) for c, ms in (await streams_view.heartbeats()).items()}
        upcoming = [edge for p in self.contest.periods for edge in (p.end_ms,) if edge > now]
        return Overview(now, periods, streams, beats, min(upcoming) if upcoming else None)

    async def audit(self, limit: int = 100, before: tuple[int, int, int, int] | None = None) -> list[AuditLine]:
        """Every committee event, newest first (DESIGN §6b "Nhật ký"): who, what, why, when."""
        rows = await committee_events(self.pool, limit, before)
        lines = [_audit_line(key, archived_s, event) for key, archived_s, event in rows]
        async with connection(self.pool) as conn:
            names = await display_names(conn, sorted({line.subject for line in lines if line.subject}))
        return [msgspec.structs.replace(line, subject_name=names.get(line.subject, "")) for line in lines]

    async def record_read(self, what: str, subject: str, *, by: str, reason: str) -> None:
        """Record that personal data was read (an export made by another door)."""
        await self._append(CommitteeRead(what=what, subject=subject, at_ms=self.clock.now_ms(), by=by,
                                         reason=_reason(reason)))

    def new_csrf(self) -> str:
        return secrets.token_urlsafe(24)


def _audit_line(key: tuple[int, int, int, int], archived_s: float, event: AnyEvent) -> AuditLine:
    at = int(getattr(event, "at_ms", 0) or archived_s * 1000)
    by, reason = getattr(event, "by", ""), getattr(event, "reason", "")
    kind = type(event).__struct_config__.tag
    subject = detail = ""
    if isinstance(event, ParticipantDisqualified):
        subject = event.participant_id
    elif isinstance(event, AnswerKeyCorrected):
        subject, detail = event.question_id, event.answer
    elif isinstance(event, ParticipantMoved):
        subject, detail = event.participant_id, f"{event.from_unit or ''}→{event.unit_code}"
    elif isinstance(event, AccessKeyReset):
        subject = event.participant_id
    elif isinstance(event, ParticipantErased):
        ids = event.participant_ids
        subject, detail = (ids[0], "") if len(ids) == 1 else ("", f"{len(ids)} người dự thi")
    elif isinstance(event, CommitteeRead):
        subject, detail = event.subject, event.what
    elif hasattr(event, "period"):
        subject = str(getattr(event, "period", ""))
        detail = f"{getattr(event, 'revision', '')}:{getattr(event, 'results_digest', '')}"
    return AuditLine(key, at, by, str(kind), reason, subject, detail)
