"""The projector on a long-lived connection: what it stages for a batch is gone at the batch's commit."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from eventstore.events import AnyEvent, ParticipantRegistered, SubmissionReceived
from projections.apply import Projector


def registered(n: int) -> ParticipantRegistered:
    return ParticipantRegistered(participant_id=f"p{n}", group="cbccvc", unit_code="A", display_name=f"Người {n}",
                                 phone_masked="0912***678", id_hash=f"id{n}", phone_hash=f"ph{n}", pii=b"sealed",
                                 registered_ms=n)


def submitted(n: int, attempt: int) -> SubmissionReceived:
    return SubmissionReceived(submission_id=f"s{n}-{attempt}", attempt_id=f"a{n}-{attempt}", participant_id=f"p{n}",
                              group="cbccvc", unit_code="A", period=1, started_ms=0, received_ms=60_000,
                              question_ids=["Q1", "Q2"], answers={"Q1": "A"}, prediction=n)


async def test_a_scorer_connection_stages_nothing_past_a_commit(contest: Contest, pool: AsyncConnectionPool) -> None:
    """A scorer keeps its connection for weeks: rows staged by one batch and deleted in it would stay as dead
    pages (autovacuum never visits temporary tables) that every later batch scans."""
    projector = Projector(contest)
    async with pool.connection() as conn:
        for batch in range(3):
            events: list[AnyEvent] = []
            for n in range(batch * 200, (batch + 1) * 200):
                events += [registered(n), submitted(n, 1), submitted(n, 2)]
            async with conn.transaction():
                await projector.apply(conn, [((batch, i, 0, 0), e) for i, e in enumerate(events)])
            cur = await conn.execute("SELECT pg_relation_size('pg_temp.staged_participants'),"
                                     " pg_relation_size('pg_temp.staged_entries')")
            assert await cur.fetchone() == (0, 0)
            await conn.commit()  # the check's own transaction: the next batch's is a transaction, not a savepoint
        cur = await conn.execute("SELECT count(*) FROM participants UNION ALL SELECT count(*) FROM entries"
                                 " UNION ALL SELECT count(*) FROM counted")
        assert [n for n, in await cur.fetchall()] == [600, 1200, 600]
