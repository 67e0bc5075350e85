"""Replay equals live: rebuilding from the event table gives byte-identical rankings, prizes, digests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.replay import replay
from tests.harness import System, admin

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("register"), st.sampled_from(["A", "A1", "B", "C1", None])),
    st.tuples(st.just("entry"), st.integers(0, 20), st.integers(0, 5), st.integers(0, 12), st.integers(5, 1200)),
    st.tuples(st.just("disqualify"), st.integers(0, 20)),
    st.tuples(st.just("move"), st.integers(0, 20), st.sampled_from(["A", "A1", "B", "C", "C1"])),
    st.tuples(st.just("correct"), st.sampled_from([f"Q{n}" for n in range(1, 11)]), st.sampled_from("ABCD")),
    st.tuples(st.just("drain")),
    st.tuples(st.just("close")),
    st.tuples(st.just("recompute")),
    st.tuples(st.just("freeze")),  # the clock into the open period's freeze (DESIGN §3)
    st.tuples(st.just("erase"), st.integers(0, 20), st.booleans()),  # by the participant, or the committee
), min_size=5, max_size=40)


async def snapshot(s: System) -> dict[str, Any]:
    """Everything a reader can see, plus the result tables row for row."""
    shot: dict[str, Any] = {}
    for p in s.contest.periods:
        for g in s.contest.groups:
            shot[f"board {p.number} {g.code}"] = await s.get(f"/v1/periods/{p.number}/leaderboard?group={g.code}&limit=500")
        shot[f"units {p.number}"] = await s.get(f"/v1/periods/{p.number}/units")
        for revision in range(1, 6):
            shot[f"prizes {p.number} {revision}"] = await s.get(f"/v1/periods/{p.number}/prizes?revision={revision}")
    shot["final"] = await s.get("/v1/final")
    shot["participation"] = await s.get("/v1/participation")
    for p in s.contest.periods:
        shot[f"participation {p.number}"] = await s.get(f"/v1/participation?period={p.number}")
    async with s.clients.pool.connection() as conn:
        for table, columns in (("period_results", "period, revision, results_digest, barrier, prizes, units"),
                               ("final_ranking", "*"), ("final_results", "revision, document"),
                               ("counted", "*"), ("entries", "*"), ("participants", "*"), ("disqualifications", "*"),
                               ("answer_key_corrections", "*"), ("unit_moves", "*")):
            cur = await conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2")
            shot[table] = [tuple(row) for row in await cur.fetchall()]
        cur = await conn.execute("SELECT participant_id FROM participants ORDER BY 1")
        for (pid,) in await cur.fetchall():
            for p in s.contest.periods:
                shot[f"view {p.number} {pid}"] = await s.get(f"/v1/periods/{p.number}/participants/{pid}")
    return shot


async def play(s: System, actions: list[tuple[Any, ...]]) -> None:
    people: list[str] = []
    period = 1
    for action in actions:
        kind = action[0]
        if kind == "register":
            unit = action[1]
            people.append(await s.register(group="nhan_dan" if unit is None else "cbccvc", unit_code=unit))
        elif kind == "entry" and people:
            pid = people[action[1] % len(people)]
            status, body = await s.attempt(pid)
            end = s.contest.periods[body["period"] - 1].end_ms if status == 201 else 0
            if status == 201 and s.clock.ms + action[4] * 1000 < end:
                await s.submit(body, action[2], prediction=action[3], after=action[4])
        elif kind == "disqualify" and people:
            await s.admin_post("/v1/admin/disqualifications", {"participant_id": people[action[1] % len(people)],
                                                         "reason": "x"}, headers=admin())
        elif kind == "erase" and people:  # a winner erased after a close keeps the published name (DESIGN §10)
            pid = people[action[1] % len(people)]
            if action[2]:
                await s.post("/v1/participants/me/erasure", {"confirm": True}, headers=s.auth(pid))
            else:
                await s.admin_post("/v1/admin/erasures", {"participant_id": pid, "reason": "x"}, headers=admin())
        elif kind == "move" and people:
            status, body = await s.admin_post("/v1/admin/unit-moves", {
                "participant_id": people[action[1] % len(people)], "unit_code": action[2], "reason": "đăng ký nhầm"},
                headers=admin())
            assert status in (202, 409), body  # 409: in that unit already
        elif kind == "correct":
            await s.admin_post("/v1/admin/answer-key", {"question_id": action[1], "answer": action[2]}, headers=admin())
        elif kind == "drain":
            await s.drain()
        elif kind == "close" and period <= len(s.contest.periods):
            await s.close(period)
            period += 1
            if period <= len(s.contest.periods):
                s.clock.ms = max(s.clock.ms, s.contest.periods[period - 1].start_ms + 1000)
        elif kind == "freeze" and period <= len(s.contest.periods):
            freeze = s.contest.frozen_at(s.contest.periods[period - 1])
            s.clock.ms = max(s.clock.ms, freeze or 0)
        elif kind == "recompute" and period > 1:
            await s.drain()
            status, body = await s.admin_post(f"/v1/admin/periods/{period - 1}/recompute", None, headers=admin())
            assert status == 200, body
    while period <= len(s.contest.periods):
        await s.close(period)
        period += 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(actions=ACTIONS)
async def test_replay_equals_live(variant: Any, actions: list[tuple[Any, ...]]) -> None:
    async with variant() as s:
        await play(s, actions)
        await s.drain()
        live = await snapshot(s)
        async with s.clients.pool.connection() as conn:  # replay must rebuild, not merely re-apply
            await conn.execute("DELETE FROM counted; DELETE FROM final_ranking; UPDATE entries SET score = -1,"
                               " unit_code = 'X'; UPDATE period_results SET prizes = '{}'; DELETE FROM disqualifications;"
                               " DELETE FROM unit_moves")
        report = await replay(s.contest, s.clients.pool, batch_size=7)
        assert report.mismatches == []
        assert report.results == len(live["period_results"])  # every published revision recomputed
        assert json.dumps(await snapshot(s), sort_keys=True, default=str) == json.dumps(live, sort_keys=True,
                                                                                       default=str)


async def test_replay_gives_the_frozen_projections_again(system: System) -> None:
    """The freeze is a rule of the projection, not a snapshot: entries, corrections and disqualifications
    made during it, applied by a replay in batches in any order, give the same frozen answers and rows."""
    s = system
    people = [await s.register(unit_code=u) for u in ("A", "A1", "B", "C1")]
    for i, pid in enumerate(people):
        await s.entry(pid, 2 + i % 3, prediction=i)
    freeze = s.contest.frozen_at(s.contest.periods[0])
    assert freeze is not None
    s.clock.ms = freeze - 30_000
    attempt = await s.start(people[0])  # received after the freeze began
    s.clock.ms = freeze + 1
    await s.admin_post("/v1/admin/answer-key", {"question_id": "Q1", "answer": "D"}, headers=admin())
    await s.admin_post("/v1/admin/answer-key", {"question_id": "Q2", "answer": "C"}, headers=admin())
    await s.admin_post("/v1/admin/disqualifications", {"participant_id": people[1], "reason": "x"}, headers=admin())
    await s.submit(attempt, 5, prediction=9)
    for pid in people[2:]:
        await s.entry(pid, 5)
    await s.drain()
    frozen = await snapshot(s)
    assert frozen["board 1 cbccvc"][1]["frozen_at"] is not None
    report = await replay(s.contest, s.clients.pool, batch_size=3)
    assert report.mismatches == []
    assert json.dumps(await snapshot(s), sort_keys=True, default=str) == json.dumps(frozen, sort_keys=True, default=str)


async def test_replay_reports_a_tampered_digest(system: System) -> None:
    s = system
    await s.entry(await s.register(), 5)
    await s.close(1)
    async with s.clients.pool.connection() as conn:
        await conn.execute("DELETE FROM events WHERE kind = 'submission_received'")
    report = await replay(s.contest, s.clients.pool)
    assert len(report.mismatches) == 1 and "period 1 revision 1" in report.mismatches[0]


async def test_concurrent_closes_and_recomputes_replay_to_the_same_digests(system: System) -> None:
    """Closes and recomputes fired together while entries, corrections and disqualifications arrive:
    each revision is published in the order of its barrier, so a replay gives every digest again."""
    import asyncio

    s = system
    people = [await s.register(unit_code=u) for u in ("A", "A1", "B", "C1", "A", "B")]
    for i, pid in enumerate(people):
        await s.entry(pid, 5 - i % 4, prediction=i)
    await s.close(1)

    async def churn(i: int) -> None:
        pid = await s.register(unit_code="B")  # events landing between the barriers
        await s.admin_post("/v1/admin/disqualifications", {"participant_id": people[i], "reason": "x"}, headers=admin())
        await s.admin_post("/v1/admin/answer-key", {"question_id": f"Q{i + 1}", "answer": "ABCD"[i % 4]}, headers=admin())
        await s.drain()
        assert pid

    async def recompute(n: int) -> None:
        status, body = await s.admin_post(f"/v1/admin/periods/{n}/recompute", None, headers=admin())
        assert status == 200, body

    await s.close(2)
    for round_ in range(3):
        await asyncio.gather(recompute(1), recompute(2), churn(round_), recompute(1), recompute(2))
    async with s.clients.pool.connection() as conn:
        rows = await (await conn.execute("SELECT barrier, period, revision FROM period_results")).fetchall()
    report = await replay(s.contest, s.clients.pool)
    assert report.mismatches == [] and report.results == len(rows) >= 14


async def test_replay_skips_what_projects_nothing_and_counts_it(system: System) -> None:
    """Attempt starts are not read back (a close reads them from the event table), but they are counted."""
    s = system
    for correct in (5, 3):
        await s.entry(await s.register(), correct)
    await s.close(1)
    report = await replay(s.contest, s.clients.pool)
    assert report.mismatches == [] and report.skipped == 2
    assert report.events + report.skipped == await s.count("events")
