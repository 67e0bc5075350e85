"""cchc simulate: a realistic week straight into the stream, scored like any other."""

from __future__ import annotations

from ops.simulate import simulate, week
from tests.harness import System


def test_a_week_crowds_towards_the_cut_off(contest: object) -> None:
    period = contest.periods[0]  # type: ignore[attr-defined]
    subs = [e[0] for e in week(contest, period, 300, 900) if type(e[0]).__name__ == "SubmissionReceived"]  # type: ignore[arg-type]
    assert 600 <= len(subs) <= 900
    assert all(period.start_ms <= s.received_ms < period.end_ms for s in subs)
    assert all(s.received_ms - s.started_ms <= 1200 * 1000 for s in subs)
    last_day = sum(1 for s in subs if s.received_ms >= period.end_ms - 86_400_000)
    assert last_day > len(subs) / 3  # a seventh of the week holds far more than a seventh of the entries


async def test_simulated_entries_are_scored_and_usable_by_the_api(system: System) -> None:
    s = system
    written = await simulate(s.contest, s.committee.writer, s.contest.periods[0], 50, 120)
    assert written == await s.stream_length()
    await s.drain()
    assert await s.count("participants") == 50 and await s.count("entries") > 50
    board = await s.ok("/v1/periods/1/leaderboard?limit=500")
    assert board["total"] == await s.count("counted") - (await s.ok("/v1/periods/1/leaderboard?group=nhan_dan"))["total"]
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT participant_id FROM participants LIMIT 1")
        (pid,) = await cur.fetchone()  # type: ignore[misc]
    status, _ = await s.attempt(pid)  # ingest knows simulated people, who hold no access key
    assert status == 401
