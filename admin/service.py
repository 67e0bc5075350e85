"""The committee's actions as one service: close, recompute, disqualify, correct the answer key, erase a
participant's personal data and the retention erasure (admin.erasure), and (admin.export) the committee's
files. The CLI and the HTTP admin routes are two doors to it; they only translate arguments and errors."""

from __future__ import annotations

from admin.erasure import Erasures, Forgotten, UnknownParticipant
from admin.flags import period_flags
from admin.questions import question_report
from contest.flags import Flag
from contest.model import Choice, Contest
from contest.questions import QuestionStat
from eventstore.events import AnswerKeyCorrected, ParticipantDisqualified, encode_many
from eventstore.redis_stream.writer import StreamWriter
from projections.close import Closer, PeriodClosed, UnknownPeriod
from projections.live_queries import LiveQueries
from runtime.clock import Clock
from runtime.errors import NotFound

__all__ = ["Committee", "UnknownParticipant", "UnknownQuestion"]


class UnknownQuestion(NotFound):
    """No question with this id in the contest."""

    code = "unknown_question"


class Committee:
    def __init__(self, contest: Contest, writer: StreamWriter, closer: Closer, clock: Clock, *,
                 retention_s: int = 30 * 86_400, erasures: Erasures | None = None) -> None:
        self.contest = contest
        self.writer = writer
        self.closer = closer
        self.clock = clock
        self.retention_s = retention_s
        self.erasures = erasures or Erasures(contest, writer, closer.pool, clock)

    async def close(self, period: int, *, by: str) -> PeriodClosed:
        """Freeze a period's results once every entry received before its end is projected (idempotent);
        the period's attempt counters (and, after the last close, the receipts) then expire after the
        retention."""
        closed = await self.closer.close(period, by=by)
        await self.writer.record_closed(period)  # the quiz page's status of the period (ingest reads Redis only)
        revisions = await self.closer.results.latest_revisions()
        await self.writer.expire_closed(period, contest_closed=len(revisions) == len(self.contest.periods),
                                        retention_s=self.retention_s)
        return closed

    async def recompute(self, period: int, *, by: str) -> PeriodClosed:
        """A new revision of a closed period from the events as they stand now."""
        return await self.closer.recompute(period, by=by)

    async def flags(self, period: int) -> list[Flag]:
        """What to review before publishing a period: too fast, shared addresses, copied entries."""
        if self.contest.period(period) is None:
            raise UnknownPeriod(f"no period {period} in this contest")
        return await period_flags(LiveQueries(self.closer.pool), self.contest, period)

    async def questions(self, period: int | None) -> list[QuestionStat]:
        """Per question: drawn, answered right, overall and among the strongest entries; likely wrong keys."""
        if period is not None and self.contest.period(period) is None:
            raise UnknownPeriod(f"no period {period} in this contest")
        return await question_report(LiveQueries(self.closer.pool), self.contest, period)

    async def disqualify(self, participant_id: str, reason: str, *, by: str) -> None:
        if await self.writer.participant_info(participant_id) is None:
            raise UnknownParticipant("no participant with this id")
        # The event first: if the second write fails, the record still says it and the
        # projections honour it; the set only stops new attempts early.
        await self.writer.append(encode_many([ParticipantDisqualified(
            participant_id=participant_id, reason=reason, at_ms=self.clock.now_ms(), by=by)]),
            participant_id=participant_id)  # in the participant's partition: ordered with its entries
        await self.writer.disqualify(participant_id)

    async def correct_answer(self, question_id: str, answer: Choice, *, by: str, reason: str = "") -> None:
        if question_id not in self.contest.questions:
            raise UnknownQuestion(f"no question {question_id!r} in this contest")
        await self.writer.append(encode_many([AnswerKeyCorrected(question_id=question_id, answer=answer,
                                                                 at_ms=self.clock.now_ms(), by=by, reason=reason)]))

    async def erase(self, participant_id: str, reason: str, *, by: str) -> int:
        """Erase a participant's personal data (a request the committee received by other means, DESIGN §10):
        their CCCD, phone, birth date and name can no longer be read anywhere, their access key stops working,
        their entries and prizes stand. Returns when it was erased (ms; the first time, if it was before).
        The event records who, why and when."""
        return await self.erasures.erase(participant_id, reason, by=by)

    async def forget_expired(self, *, by: str) -> Forgotten:
        """`cchc forget --expired`: once every period is closed, erased participants' identity claims go;
        `retention_days` after the last close, everyone's personal data (admin.erasure)."""
        return await self.erasures.forget_expired(by=by)
