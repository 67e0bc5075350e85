"""A close's facts computed by the database (one counted entry per participant) are the pure rules' own
(contest.closing.period_facts over every valid entry), for every attempt selection, prediction mode and
target, through ties down to the attempt id."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest
from psycopg_pool import AsyncConnectionPool

from contest.closing import close_period, period_facts
from contest.model import Contest
from eventstore.barrier import Barrier
from eventstore.ids import uuid7
from projections import live_queries

BARRIER = Barrier.parse(f"{2**62}-0")


async def _fill(pool: AsyncConnectionPool, contest: Contest, seed: int) -> None:
    """Entries crowded into few values (ties on score, prediction error, duration and time), some
    without a started attempt (not valid), in every group, some without a unit."""
    rng = random.Random(seed)
    groups = [g.code for g in contest.groups]
    units = sorted(contest.units)
    people = [(uuid7(1_000 + n), rng.choice(groups), rng.choice([None, *units[:4]])) for n in range(60)]
    rows, starts = [], []
    for n in range(400):
        pid, group, unit = rng.choice(people)
        aid = uuid7(2_000 + rng.randrange(5))  # ids minted in the same few milliseconds
        correct = rng.choice([8, 9, 10, 10])
        rows.append((aid, aid, pid, 1, group, unit, correct * 10, correct, 10, rng.choice([60_000, 61_000]),
                     rng.choice([380, 400, 420, 430]), rng.choice([5_000, 5_001]), ["q"], b"\x80", 10, n, 0))
        if rng.random() < 0.9:
            starts.append((9, n, aid))
    async with pool.connection() as conn:
        async with conn.cursor() as cur, cur.copy(
                "COPY entries (attempt_id, submission_id, participant_id, period, group_code, unit_code, score,"
                " correct, questions, duration_ms, prediction, submitted_ms, question_ids, answers, ev_ms, ev_seq,"
                " ev_idx) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        async with conn.cursor() as cur, cur.copy(
                "COPY events (stream_ms, stream_seq, part, idx, period, kind, body, ref) FROM STDIN") as copy:
            for ms, seq, aid in starts:
                await copy.write_row((ms, seq, 0, 0, 1, "attempt_started", b"", aid))


RULES = list(itertools.product(("best", "first", "last"), ("absolute", "not_over"),
                               ("entries", "participants", "perfect_participants")))


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_databases_facts_are_the_pure_rules_facts(pool: AsyncConnectionPool, contest: Contest,
                                                            seed: int) -> None:
    await _fill(pool, contest, seed)
    async with pool.connection() as conn:
        valid = await live_queries.valid_entries(conn, contest, 1, BARRIER)
        assert 0 < len(valid) < 400  # some were never started
        for selection, mode, target in RULES:
            rules = msgspec.structs.replace(contest.rules, attempt_selection=selection, prediction_mode=mode,
                                            prediction_target=target)
            variant = msgspec.structs.replace(contest, rules=rules)
            ours = await live_queries.period_facts(conn, variant, 1, BARRIER)
            pure = period_facts(variant, valid)
            case = (selection, mode, target)
            assert (ours.actual, ours.entries, ours.unit_entries) == (pure.actual, pure.entries, pure.unit_entries), case
            assert sorted(ours.counted, key=lambda e: e.participant_id) == \
                sorted(pure.counted, key=lambda e: e.participant_id), case
            assert close_period(variant, ours) == close_period(variant, pure), case
