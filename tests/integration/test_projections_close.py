"""Closing periods on real servers: drain, freeze, digest, idempotence, and every rule option."""

from __future__ import annotations

from typing import Any

from contest.digest import results_digest
from tests.harness import System, admin


async def prizes(s: System, n: int) -> dict[str, Any]:
    return dict(await s.ok(f"/v1/periods/{n}/prizes"))


def winners(doc: dict[str, Any], group: str = "cbccvc") -> list[str]:
    return [p["participant_id"] for p in doc["individual"] if p["group"] == group]


async def test_closing_twice_gives_the_same_revision_and_digest(system: System) -> None:
    s = system
    for correct in (5, 4, 3):
        await s.entry(await s.register(), correct, prediction=correct)
    first = await s.close(1)
    again = await s.close(1)
    assert first == again
    doc = await prizes(s, 1)
    assert doc["revision"] == 1 and results_digest(doc) == first["results_digest"]
    assert await s.count("period_results") == 1


async def test_close_waits_for_the_scorers_then_answers_not_drained(system: System) -> None:
    s = system
    await s.entry(await s.register(), 5)
    period = s.contest.periods[0]
    s.clock.ms = period.end_ms + 100  # inside the settle window
    status, body = await s.admin_post("/v1/admin/periods/1/close", None, headers=admin())
    assert status == 503 and body["error"]["code"] == "not_drained"
    s.clock.ms = period.end_ms + 5000  # settled, but nobody has scored the entry
    answer = await s.desk.post("/v1/admin/periods/1/close", headers=admin())
    assert answer.status == 503 and answer.headers["Retry-After"]
    assert (await answer.json())["error"]["code"] == "not_drained"
    assert await s.count("period_results") == 0
    await s.drain()
    status, _ = await s.admin_post("/v1/admin/periods/1/close", None, headers=admin())
    assert status == 200


async def test_prizes_before_close_and_unknown_revision(system: System) -> None:
    s = system
    status, body = await s.get("/v1/periods/1/prizes")
    assert status == 409 and body["error"]["code"] == "not_closed"
    await s.close(1)
    assert (await s.ok("/v1/periods/1/prizes?revision=1"))["revision"] == 1
    status, body = await s.get("/v1/periods/1/prizes?revision=7")
    assert status == 404
    status, body = await s.get("/v1/periods/1/prizes?revision=x")
    assert status == 422


async def test_an_empty_period_closes_with_no_winners(system: System) -> None:
    s = system
    await s.close(1)
    doc = await prizes(s, 1)
    assert doc["actual"] == 0 and doc["individual"] == [] and doc["unit"] == []


async def test_final_ranking_orders_by_prediction_error(system: System) -> None:
    s = system
    far, near, exact = [await s.register() for _ in range(3)]
    await s.entry(far, 5, prediction=100, after=10)
    await s.entry(near, 5, prediction=4, after=20)
    await s.entry(exact, 5, prediction=3, after=30)
    live = await s.ok("/v1/periods/1/leaderboard")
    assert live["entries"] == []  # nothing scored yet
    await s.drain()
    live = await s.ok("/v1/periods/1/leaderboard")
    assert [e["participant_id"] for e in live["entries"]] == [far, near, exact]  # provisional: duration
    await s.close(1)
    board = await s.ok("/v1/periods/1/leaderboard")
    assert board["final"] is True
    assert [(e["participant_id"], e["prediction_error"]) for e in board["entries"]] == [
        (exact, 0), (near, 1), (far, 97)]
    assert winners(await prizes(s, 1)) == [exact, near, far]


async def test_not_over_mode(variant: Any) -> None:
    async with variant(prediction_mode="not_over") as s:
        over, under = await s.register(), await s.register()
        await s.entry(over, 5, prediction=3)  # actual will be 2: over by one
        await s.entry(under, 5, prediction=0)  # under by two
        await s.close(1)
        assert winners(await prizes(s, 1)) == [under, over]


async def test_prediction_targets(variant: Any) -> None:
    for target, expected in (("participants", 2), ("perfect_participants", 1), ("entries", 3)):
        async with variant(prediction_target=target) as s:
            a, b = await s.register(), await s.register()
            await s.entry(a, 5)
            await s.entry(a, 4)
            await s.entry(b, 4)
            await s.close(1)
            assert (await prizes(s, 1))["actual"] == expected, target


async def test_first_and_last_attempt_selection(variant: Any) -> None:
    for selection, expected_score in (("first", 10), ("last", 20), ("best", 25)):
        async with variant(attempt_selection=selection) as s:
            pid = await s.register()
            for correct in (2, 5, 4):
                await s.entry(pid, correct)
            await s.drain()
            live = (await s.ok(f"/v1/periods/1/participants/{pid}"))["best"]["score"]
            await s.close(1)
            final = (await s.ok(f"/v1/periods/1/participants/{pid}"))
            assert live == final["best"]["score"] == expected_score, selection
            assert len(final["attempts"]) == 3 and final["final"] is True


async def test_one_prize_per_person(variant: Any) -> None:
    for rule, second_week in ((True, "b"), (False, "a")):
        async with variant(one_prize_per_person=rule) as s:
            people = {"a": await s.register(), "b": await s.register()}
            await s.entry(people["a"], 5)
            await s.close(1)
            s.clock.ms = s.contest.periods[1].start_ms + 60_000
            await s.entry(people["a"], 5, after=10)
            await s.entry(people["b"], 4, after=10)
            await s.close(2)
            first = winners(await prizes(s, 2))[0]
            assert first == people[second_week], rule


async def test_weekly_unit_prize_once_per_unit(system: System) -> None:
    s = system
    a1, a2, b = await s.register(unit_code="A"), await s.register(unit_code="A1"), await s.register(unit_code="B")
    await s.entry(a1, 5)
    await s.entry(a2, 5)
    await s.entry(b, 2)
    await s.close(1)
    assert [u["unit_code"] for u in (await prizes(s, 1))["unit"]] == ["A"]
    s.clock.ms = s.contest.periods[1].start_ms + 60_000
    await s.entry(a1, 5, after=10)
    await s.entry(a2, 5, after=10)
    await s.entry(b, 1, after=10)
    await s.close(2)
    week2 = await prizes(s, 2)
    assert [u["unit_code"] for u in week2["unit"]] == ["B"]  # A already won a weekly prize
    units = await s.ok("/v1/periods/2/units")
    assert units["final"] is True and units["entries"][0]["unit_code"] == "A"
    final = await s.ok("/v1/final")
    assert [u["unit_code"] for u in final["unit"]] == ["A", "B"]  # final prizes ignore weekly wins
    assert final["unit"][0]["participants"] == 2 and final["unit"][0]["entries"] == 4


async def test_disqualified_participants_are_skipped_everywhere(system: System) -> None:
    s = system
    cheat, honest = await s.register(), await s.register()
    await s.entry(cheat, 5)
    await s.entry(honest, 3)
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": cheat, "reason": "x"},
                             headers=admin())
    assert status == 202
    await s.close(1)
    doc = await prizes(s, 1)
    assert winners(doc) == [honest] and doc["actual"] == 1
    board = await s.ok("/v1/periods/1/leaderboard")
    assert [e["participant_id"] for e in board["entries"]] == [honest] and board["entries"][0]["rank"] == 1


async def test_final_needs_every_period_closed(system: System) -> None:
    s = system
    status, body = await s.get("/v1/final")
    assert status == 409 and body["error"]["code"] == "not_closed"
    await s.close(1)
    assert (await s.get("/v1/final"))[0] == 409
    await s.close(2)
    final = await s.ok("/v1/final")
    assert set(final) == {"unit", "ranking"} and len(final["ranking"]) == 3


async def test_a_closed_contest_lets_its_receipts_and_attempt_counters_expire(system: System) -> None:
    s = system
    pid = await s.register()
    keys = s.keys.of(pid)
    await s.entry(pid, 5)
    await s.close(1)
    assert 0 < await s.clients.redis.ttl(keys.attempts(1)) <= 30 * 86_400
    assert await s.clients.redis.ttl(keys.receipts) == -1  # another period is still to come
    for period in s.contest.periods[1:]:
        await s.close(period.number)
    assert 0 < await s.clients.redis.ttl(keys.receipts) <= 30 * 86_400


async def test_a_close_counts_no_submission_without_its_attempt_start(system: System) -> None:
    """A submission whose attempt the server never started (a token forged with a leaked secret, an
    event written by something else) is never counted by a close, live as in a replay."""
    from eventstore.events import SubmissionReceived, encode_many
    from eventstore.ids import uuid7
    from projections.replay import replay

    s = system
    honest = await s.register()
    await s.entry(honest, 3)
    cheat = await s.register()
    questions = s.contest.bank("cbccvc")[:5]
    now = s.clock.now_ms()
    forged = SubmissionReceived(submission_id=uuid7(now), attempt_id=uuid7(now), participant_id=cheat, group="cbccvc",
                                unit_code="A", period=1, started_ms=now - 1000, received_ms=now,
                                question_ids=questions, answers={q: s.key[q] for q in questions}, prediction=0)
    await s.committee.writer.append(encode_many([forged]), participant_id=cheat)
    await s.drain()
    live = await s.ok("/v1/periods/1/leaderboard")
    assert live["entries"][0]["participant_id"] == cheat  # the live board shows what arrived…
    await s.close(1)
    doc = await s.ok("/v1/periods/1/prizes")
    assert winners(doc) == [honest] and doc["actual"] == 1  # …the close counts only started attempts
    report = await replay(s.contest, s.clients.pool)
    assert report.mismatches == []


async def test_a_start_archived_after_its_submission_still_counts(system: System) -> None:
    """Scorers run concurrently: a submission may be projected before its attempt start is archived;
    the close then finds the start itself."""
    s = system
    pid = await s.register()
    await s.entry(pid, 4)
    scorer = s.scorers[0]
    await scorer.consumer.ensure_groups()
    registration, start, submission = sorted(await scorer.consumer.read(s.keys.numbers, 10, None))
    for entry in (registration, submission, start):  # the start last
        await scorer.process([entry])
    await s.close(1)
    assert winners(await s.ok("/v1/periods/1/prizes")) == [pid]


async def test_results_are_published_in_the_order_of_their_barriers(system: System) -> None:
    """A close that waits for another to finish takes its barrier after it, so the revision order
    is the barrier order (the order a replay meets the markers in) whatever the concurrency."""
    import asyncio

    from eventstore.barrier import Barrier, entry_tuple
    from projections.results_queries import RESULTS_LOCK

    s = system
    await s.entry(await s.register(), 5)
    s.clock.ms = s.contest.periods[0].end_ms + 5000
    await s.drain()
    async with s.clients.pool.connection() as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", (RESULTS_LOCK,))  # another close is publishing
        closing = asyncio.create_task(s.admin_post("/v1/admin/periods/1/close", None, headers=admin()))
        for _ in range(200):
            cur = await holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if (await cur.fetchone() or (0,))[0]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the close never queued for the results lock")
        late = await s.register()  # appended while the close waits for the lock
        await s.drain()
        appended = await s.streams.barrier()
        await holder.execute("SELECT pg_advisory_unlock(%s)", (RESULTS_LOCK,))
        status, body = await closing
    assert status == 200, body
    async with s.clients.pool.connection() as conn:
        barrier = (await (await conn.execute("SELECT barrier FROM period_results")).fetchone() or ("",))[0]
    taken = Barrier.parse(barrier)
    assert late and all(entry_tuple(taken.ids[n]) >= entry_tuple(i) for n, i in appended.ids.items())


async def test_final_honours_a_disqualification_made_after_a_week_closed(system: System) -> None:
    """Decision (README): /final counts every period's valid entries as of its own publication, so a
    person disqualified after week 1 closed drops out of it as a recompute of week 1 would drop them —
    and recomputing week 1 afterwards changes nothing in it."""
    s = system
    cheat, honest = await s.register(unit_code="A"), await s.register(unit_code="B")
    await s.entry(cheat, 5)
    await s.entry(honest, 1)
    await s.close(1)
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": cheat, "reason": "thi hộ"},
                             headers=admin())
    assert status == 202
    s.clock.ms = s.contest.periods[1].start_ms + 60_000
    await s.entry(honest, 1, after=10)
    await s.close(2)
    final = await s.ok("/v1/final")
    by_unit = {u["unit_code"]: u for u in final["ranking"]}
    assert by_unit["A"]["participants"] == 0 and by_unit["A"]["entries"] == 0
    assert [u["unit_code"] for u in final["unit"]] == ["B"]
    status, _ = await s.admin_post("/v1/admin/periods/1/recompute", None, headers=admin())
    assert status == 200
    assert await s.ok("/v1/final") == final


async def test_final_rescored_as_of_its_barrier_equals_the_projected_path(system: System) -> None:
    """The final units from the projected scores (SQL) and from a rescore as of the barrier (Python, used
    when a key correction came after it) agree."""
    from eventstore.barrier import entry_tuple
    from eventstore.keys import CONTEST_STREAM
    from projections import close, live_queries

    s = system
    for unit, correct in (("A", 5), ("A1", 3), ("B", 4), ("C1", 2), ("A", 1)):
        pid = await s.register(unit_code=unit)
        await s.entry(pid, correct)
        await s.entry(pid, correct // 2)
    await s.register(group="nhan_dan", unit_code="B")
    await s.close(1)
    await s.close(2)
    barrier = await s.streams.barrier()
    async with s.clients.pool.connection() as conn:
        projected = await live_queries.contest_unit_aggregates(conn, s.contest, barrier)
        ms, seq = entry_tuple(barrier.ids[CONTEST_STREAM])
        await conn.execute("INSERT INTO answer_key_corrections (ev_ms, ev_seq, ev_part, ev_idx, question_id, answer,"
                           " at_ms) VALUES (%s, %s, %s, 0, 'Q999', 'A', 0)", (ms + 1, seq, CONTEST_STREAM))
        assert await live_queries.corrected_after(conn, barrier)
        await close._refresh_final(conn, s.contest, barrier.text())
        cur = await conn.execute("SELECT document FROM final_results ORDER BY revision")
        documents = [row[0] for row in await cur.fetchall()]
    assert len(documents) == 2 and documents[0] == documents[1]
    assert sum(a.participants for a in projected) == 5 and sum(a.entries for a in projected) == 10


async def test_each_revision_ranks_in_its_own_partition_with_the_parents_indexes(system: System) -> None:
    """A close loads its revision into a table of its own and indexes it after the load: ATTACH must adopt
    those indexes as the parent's, or each close would build a second set (and readers would miss them)."""
    s = system
    await s.entry(await s.register(), 5)
    await s.close(1)
    status, _ = await s.admin_post("/v1/admin/periods/1/recompute", None, headers=admin())
    assert status == 200
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT c.relname, (SELECT count(*) FROM pg_index x WHERE x.indrelid = c.oid),"
            " (SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid"
            "  WHERE x.indrelid = c.oid AND i.inhparent IN (SELECT indexrelid FROM pg_index"
            "  WHERE indrelid = 'final_ranking'::regclass))"
            " FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid"
            " WHERE h.inhparent = 'final_ranking'::regclass"
            " AND c.relname IN ('final_ranking_p1_r1', 'final_ranking_p1_r2') ORDER BY 1")  # others: earlier tests'
        assert await cur.fetchall() == [("final_ranking_p1_r1", 2, 2), ("final_ranking_p1_r2", 2, 2)]


async def test_a_close_waits_for_an_answer_key_correction_being_applied(system: System) -> None:
    """It looks for corrections later than its barrier first: one committing between that look and its
    queries would rescore entries under it, so the rescore (which holds the key lock) finishes first."""
    import asyncio

    from projections.apply import KEY_LOCK

    s = system
    await s.entry(await s.register(), 5)
    s.clock.ms = s.contest.periods[0].end_ms + 5000
    await s.drain()
    async with s.clients.pool.connection() as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", (KEY_LOCK,))  # a scorer applying a correction
        closing = asyncio.create_task(s.admin_post("/v1/admin/periods/1/close", None, headers=admin()))
        for _ in range(200):
            cur = await holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                       " AND mode = 'ShareLock'")
            if (await cur.fetchone() or (0,))[0]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the close never queued for the key lock")
        assert not closing.done()
        await holder.execute("SELECT pg_advisory_unlock(%s)", (KEY_LOCK,))
        status, body = await closing
    assert status == 200, body


async def test_a_read_right_after_the_close_answers_is_final(system: System) -> None:
    """Guarantee 9 on the primary: the results API shares its answers for RESULTS_MEMO_S (in production), so the
    close answers only once every answer shared before its commit has expired."""
    from aiohttp.test_utils import TestClient, TestServer

    from ops.wiring import build_results
    from projections.visibility import RESULTS_MEMO_S
    from results import app as results_app

    s = system
    res = build_results(s.contest, s.clients, s.clock)  # the production results API: shared answers, rank cache
    assert res.fresh_s == RESULTS_MEMO_S > 0
    s.committee.closer.read_paths.memo_s = RESULTS_MEMO_S  # and the production close
    pid = await s.register(unit_code="A")
    await s.entry(pid, 4)
    await s.drain()
    async with TestClient(TestServer(results_app.build_app(res))) as results:
        async def read(path: str) -> Any:
            answer = await results.get(path)
            assert answer.status == 200, path
            return await answer.json()

        s.clock.ms = s.contest.periods[0].end_ms + 5000
        paths = ("/v1/periods/1/leaderboard", f"/v1/periods/1/participants/{pid}", "/v1/periods/1/units")
        assert [(await read(p))["final"] for p in paths] == [False, False, False]  # shared from now on
        closed = await s.close(1)
        assert [(await read(p))["final"] for p in paths] == [True, True, True]
        assert (await read("/v1/periods/1/prizes"))["revision"] == closed["revision"]
        status, body = await s.admin_post("/v1/admin/periods/1/recompute", {"reason": "x"}, headers=admin())
        assert status == 200 and body["revision"] == 2
        assert (await read(f"/v1/periods/1/participants/{pid}"))["final"] is True
        assert (await read("/v1/periods/1/prizes"))["revision"] == 2  # the new revision, once the recompute answers
