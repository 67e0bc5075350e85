"""Project freshly archived events into the ranking tables (the one path for live and replay)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import psycopg

from contest.model import Contest
from contest.scoring import count_correct, score
from eventstore.events import (
    AnyEvent,
    AttemptStarted,
    ParticipantDisqualified,
    ParticipantRegistered,
    SubmissionReceived,
)

_json = msgspec.json.Encoder()

# The live counted entry: replace the held one only when the new one is better by the
# provisional order (best) or earlier/later by submission time (first/last).
_BETTER = {
    "best": "(-excluded.score, excluded.duration_ms, excluded.submitted_ms, excluded.attempt_id)"
            " < (-c.score, c.duration_ms, c.submitted_ms, c.attempt_id)",
    "first": "(excluded.submitted_ms, excluded.attempt_id) < (c.submitted_ms, c.attempt_id)",
    "last": "(excluded.submitted_ms, excluded.attempt_id) > (c.submitted_ms, c.attempt_id)",
}


class Projector:
    """Applies events to the projection tables inside the caller's transaction.

    Answer-key corrections are archived but not yet projected (they need a rescore of the
    open periods: the corrections work).
    """

    def __init__(self, contest: Contest) -> None:
        self.contest = contest
        self.answer_key = {q.id: q.answer for q in contest.questions.values()}
        self._upsert_counted = (
            "INSERT INTO counted AS c (period, participant_id, group_code, unit_code, attempt_id,"
            " score, correct, duration_ms, prediction, submitted_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (period, participant_id) DO UPDATE SET group_code = excluded.group_code,"
            " unit_code = excluded.unit_code, attempt_id = excluded.attempt_id, score = excluded.score,"
            " correct = excluded.correct, duration_ms = excluded.duration_ms,"
            " prediction = excluded.prediction, submitted_ms = excluded.submitted_ms"
            f" WHERE {_BETTER[contest.rules.attempt_selection]}")

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[AnyEvent]) -> None:
        registered = [e for e in events if isinstance(e, ParticipantRegistered)]
        started = [e for e in events if isinstance(e, AttemptStarted)]
        submitted = [e for e in events if isinstance(e, SubmissionReceived)]
        disqualified = [e for e in events if isinstance(e, ParticipantDisqualified)]
        async with conn.cursor() as cur:
            if registered:
                await cur.executemany(
                    "INSERT INTO participants (participant_id, group_code, unit_code, display_name,"
                    " phone_masked, id_hash, phone_hash, pii, registered_ms)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(e.participant_id, e.group, e.unit_code, e.display_name, e.phone_masked,
                      e.id_hash, e.phone_hash, e.pii, e.registered_ms) for e in registered])
            if started:
                await cur.executemany(
                    "INSERT INTO attempts (attempt_id, participant_id, period, started_ms, question_ids)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(e.attempt_id, e.participant_id, e.period, e.started_ms, e.question_ids)
                     for e in started])
            if submitted:
                await self._submissions(cur, submitted)
            if disqualified:
                await cur.executemany(
                    "INSERT INTO disqualifications (participant_id, reason, at_ms) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [(e.participant_id, e.reason, e.at_ms) for e in disqualified])

    async def _submissions(self, cur: psycopg.AsyncCursor, events: list[SubmissionReceived]) -> None:
        points = self.contest.rules.points_per_correct
        rows = []
        for e in events:
            correct = count_correct(e.question_ids, e.answers, self.answer_key)
            rows.append((e, correct, score(correct, points), e.received_ms - e.started_ms))
        await cur.executemany(
            "INSERT INTO entries (attempt_id, submission_id, participant_id, period, group_code, unit_code,"
            " score, correct, questions, duration_ms, prediction, submitted_ms, question_ids, answers)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(e.attempt_id, e.submission_id, e.participant_id, e.period, e.group, e.unit_code, points_,
              correct, len(e.question_ids), duration, e.prediction, e.received_ms, e.question_ids,
              _json.encode(e.answers).decode()) for e, correct, points_, duration in rows])
        await cur.executemany(
            self._upsert_counted,
            [(e.period, e.participant_id, e.group, e.unit_code, e.attempt_id, points_, correct, duration,
              e.prediction, e.received_ms) for e, correct, points_, duration in rows])
