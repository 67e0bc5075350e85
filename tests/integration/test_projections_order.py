"""The ranking orders are written once (contest.ranking) and PostgreSQL derives its own from them: on
random entries, full of ties, the counted entry and the leaderboard order in the database equal the
pure rule's."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from contest.ranking import Entry, counted_entries, rank
from contest.scoring import score
from eventstore.events import SubmissionReceived
from projections.apply import Projector
from projections.live_queries import LiveQueries
from projections.replay import PROJECTION_TABLES

START = 1_700_000_000_000
ENTRY = st.tuples(st.sampled_from("pqrs"),  # participant
                  st.integers(0, 5),  # correct answers
                  st.sampled_from([30_000, 45_000, 60_000]),  # duration: many ties
                  st.sampled_from([0, 1_000, 2_000]),  # received after START: ties too
                  st.integers(0, 10**6))  # attempt id, unique once formatted with its position


def _submission(contest: Contest, n: int, drawn: tuple[str, int, int, int, int]) -> tuple[SubmissionReceived, Entry]:
    participant, correct, duration, received, tag = drawn
    questions = contest.bank("cbccvc")[:5]
    key = {q: contest.questions[q].answer for q in questions}
    answers = {q: key[q] if i < correct else "ABCD"[("ABCD".index(key[q]) + 1) % 4] for i, q in enumerate(questions)}
    attempt = f"a{tag:07d}-{n:03d}"
    event = SubmissionReceived(submission_id=f"s{n}", attempt_id=attempt, participant_id=participant, group="cbccvc",
                               unit_code="A", period=1, started_ms=START + received - duration,
                               received_ms=START + received, question_ids=questions, answers=answers, prediction=0)
    entry = Entry(attempt, participant, "cbccvc", "A", score(correct, contest.rules.points_per_correct), correct, 5,
                  duration, 0, START + received)
    return event, entry


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=st.lists(ENTRY, min_size=1, max_size=25), selection=st.sampled_from(["best", "first", "last"]),
       batches=st.integers(1, 4))
async def test_the_database_orders_as_the_pure_rule(pool: AsyncConnectionPool, contest: Contest,
                                                    drawn: list[Any], selection: str, batches: int) -> None:
    rules = msgspec.structs.replace(contest.rules, attempt_selection=selection)
    variant = msgspec.structs.replace(contest, rules=rules)
    pairs = [_submission(variant, n, d) for n, d in enumerate(drawn)]
    projector = Projector(variant)
    async with pool.connection() as conn:
        await conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}")
        await conn.commit()
    for b in range(batches):  # the held counted entry is replaced only by one that comes first
        async with pool.connection() as conn, conn.transaction():
            await projector.apply(conn, [((START, n, 0, 0), event) for n, (event, _) in enumerate(pairs)
                                         if n % batches == b])
    expected = counted_entries([e for _, e in pairs], rules.attempt_selection, None, rules.prediction_mode)
    board = await LiveQueries(pool).live_leaderboard(1, "cbccvc", 500, 0)
    assert {r.participant_id: r.attempt_id for r in board} == {e.participant_id: e.attempt_id for e in expected}
    assert [r.attempt_id for r in board] == [r.entry.attempt_id for r in rank(expected, None, rules.prediction_mode)]
