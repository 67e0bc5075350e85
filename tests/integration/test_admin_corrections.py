"""Corrections as events: answer key and disqualification, before and after close; recompute."""

from __future__ import annotations

from typing import Any

from contest.digest import results_digest
from tests.harness import System, admin


async def correct(s: System, question_id: str, answer: str) -> None:
    status, body = await s.admin_post("/v1/admin/answer-key", {"question_id": question_id, "answer": answer},
                                headers=admin())
    assert status == 202, body
    s.key[question_id] = answer  # the harness answers with the key as it stands


async def disqualify(s: System, participant_id: str) -> None:
    status, body = await s.admin_post("/v1/admin/disqualifications", {"participant_id": participant_id, "reason": "x"},
                                headers=admin())
    assert status == 202, body


async def best(s: System, period: int, pid: str) -> Any:
    return (await s.ok(f"/v1/periods/{period}/participants/{pid}"))["best"]


async def test_a_correction_rescores_open_periods_and_repicks_counted_entries(system: System) -> None:
    s = system
    pid = await s.register()
    attempts = [await s.start(pid), await s.start(pid)]
    given = [s.answers(attempts[0], 5), s.answers(attempts[1], 4)]
    for attempt, answers in zip(attempts, given, strict=True):
        status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "answers": answers,
                                                     "prediction": 1})
        assert status == 202
    await s.drain()
    assert (await best(s, 1, pid))["attempt_id"] == attempts[0]["attempt_id"]
    q = attempts[0]["questions"][0]["id"]
    await correct(s, q, "ABCD"[("ABCD".index(s.key[q]) + 1) % 4])
    await s.drain()
    expected = [5 * sum(1 for x in a["questions"] if g[x["id"]] == s.key[x["id"]]) for a, g in zip(attempts, given,
                                                                                                  strict=True)]
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert [a["score"] for a in view["attempts"]] == expected
    assert expected[0] == 20
    winner = 0 if expected[0] >= expected[1] else 1  # equal scores: same duration, the earlier attempt wins
    assert view["best"]["attempt_id"] == attempts[winner]["attempt_id"]
    assert view["best"]["score"] == max(expected)


async def test_closed_periods_change_only_by_recompute(system: System) -> None:
    s = system
    winner, runner = await s.register(), await s.register()
    a = await s.start(winner)
    await s.submit(a, 5, prediction=2)
    await s.entry(runner, 4, prediction=2)
    closed = await s.close(1)
    q = a["questions"][0]["id"]
    await correct(s, q, "ABCD"[("ABCD".index(s.key[q]) + 1) % 4])
    await disqualify(s, runner)
    await s.drain()
    again = await s.close(1)
    assert again == closed  # closing again is idempotent and ignores later corrections
    rev1 = await s.ok("/v1/periods/1/prizes")
    assert rev1["revision"] == 1 and rev1["individual"][0]["score"] == 25

    status, body = await s.admin_post("/v1/admin/periods/1/recompute", None, headers=admin())
    assert status == 200 and body["revision"] == 2 and body["results_digest"] != closed["results_digest"]
    rev2 = await s.ok("/v1/periods/1/prizes")
    assert rev2["revision"] == 2 and results_digest(rev2) == body["results_digest"]
    assert [(p["participant_id"], p["score"]) for p in rev2["individual"]] == [(winner, 20)]
    assert rev2["actual"] == 1  # the disqualified participant's entry no longer counts
    assert await s.ok("/v1/periods/1/prizes?revision=1") == rev1  # the old revision is kept
    board = await s.ok("/v1/periods/1/leaderboard")
    assert board["final"] is True and [e["participant_id"] for e in board["entries"]] == [winner]


async def test_correction_errors(system: System) -> None:
    s = system
    for body, status, code in (({"question_id": "Q999", "answer": "A"}, 404, "unknown_question"),
                               ({"question_id": "Q1", "answer": "E"}, 422, "invalid"),
                               ({"question_id": "Q1"}, 422, "invalid")):
        got, answer = await s.admin_post("/v1/admin/answer-key", body, headers=admin())
        assert (got, answer["error"]["code"]) == (status, code)
    got, answer = await s.admin_post("/v1/admin/answer-key", {"question_id": "Q1", "answer": "A"})
    assert got == 401
    got, answer = await s.admin_post("/v1/admin/periods/1/recompute", None, headers=admin())
    assert (got, answer["error"]["code"]) == (409, "not_closed")
    got, answer = await s.admin_post("/v1/admin/periods/1/recompute", None)
    assert got == 401
    assert await s.stream_length() == 0


async def test_a_result_counts_only_corrections_up_to_its_barrier(system: System) -> None:
    """A correction archived after the barrier (while a close computes) does not leak into it."""
    from projections.live_queries import valid_entries

    s = system
    pid = await s.register()
    attempt = await s.start(pid)
    await s.submit(attempt, 5)
    await s.drain()
    barrier = await s.streams.barrier()
    q = attempt["questions"][0]["id"]
    await correct(s, q, "ABCD"[("ABCD".index(s.key[q]) + 1) % 4])
    await s.drain()
    async with s.clients.pool.connection() as conn:
        before = await valid_entries(conn, s.contest, 1, barrier)
        after = await valid_entries(conn, s.contest, 1, await s.streams.barrier())
    assert [e.score for e in before] == [25] and [e.score for e in after] == [20]


async def test_a_result_counts_only_entries_up_to_its_barrier(system: System) -> None:
    """An entry archived after the barrier (a Redis write that landed after its client gave up) stays
    out of the result computed at that barrier, live as in a replay."""
    from projections.live_queries import valid_entries

    s = system
    await s.entry(await s.register(), 5)
    await s.drain()
    barrier = await s.streams.barrier()
    await s.entry(await s.register(), 4)
    await s.drain()
    async with s.clients.pool.connection() as conn:
        assert [e.score for e in await valid_entries(conn, s.contest, 1, barrier)] == [25]


async def test_a_correction_inside_one_batch_never_resurrects_a_stale_score(system: System) -> None:
    """[submission X, correction, submission Y] projected in one transaction: Y's counted-entry
    step must not see X's pre-correction score."""
    s = system
    pid = await s.register()
    x = await s.start(pid)
    await s.submit(x, 5)  # 25 under the original key
    q = x["questions"][0]["id"]
    await correct(s, q, "ABCD"[("ABCD".index(s.key[q]) + 1) % 4])  # X drops to 20
    y = await s.start(pid)
    y_answers = {item["id"]: s.key[item["id"]] for item in y["questions"]}
    y_answers.pop(y["questions"][-1]["id"] if y["questions"][-1]["id"] != q else y["questions"][0]["id"])
    status, _ = await s.post("/v1/submissions", {"token": y["token"], "answers": y_answers, "prediction": 1})
    assert status == 202
    await s.drain()  # one batch: everything above in one transaction
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert [a["score"] for a in view["attempts"]] == [20, 20]
    assert view["best"]["score"] == 20


async def test_every_admin_event_records_who_and_why(contest: Any, redis: Any, pool: Any) -> None:
    """CCHC_ADMIN_TOKENS gives each organiser a token; their name goes into the events they cause."""
    from dataclasses import replace

    from eventstore.events import AnswerKeyCorrected, ParticipantDisqualified, ResultsPublished, decode
    from tests.harness import SETTINGS, System

    lan, minh = "lan-" + "l" * 32, "minh-" + "m" * 32
    settings = replace(SETTINGS, admin_token=None, admin_tokens=f"Nguyễn Thị Lan:{lan},Trần Minh:{minh}")
    async with System.running(contest, redis, pool, settings) as s:
        pid = await s.register()
        await s.entry(pid, 5)
        as_lan, as_minh = {"Authorization": f"Bearer {lan}"}, {"Authorization": f"Bearer {minh}"}
        status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": pid, "reason": "thi hộ"},
                                 headers=as_lan)
        assert status == 202
        status, _ = await s.admin_post("/v1/admin/answer-key", {"question_id": "Q1", "answer": "B",
                                                          "reason": "đáp án sai"}, headers=as_minh)
        assert status == 202
        assert (await s.admin_post("/v1/admin/answer-key", {"question_id": "Q1", "answer": "B"}, headers=admin()))[0] == 401
        s.clock.ms = s.contest.periods[0].end_ms + 5000
        await s.drain()
        assert (await s.admin_post("/v1/admin/periods/1/close", None, headers=as_minh))[0] == 200
        async with s.clients.pool.connection() as conn:
            cur = await conn.execute("SELECT body FROM events WHERE kind <> 'participant_registered'"
                                     " AND kind <> 'attempt_started' AND kind <> 'submission_received'")
            events = [decode(bytes(row[0])) for row in await cur.fetchall()]
        who = {type(e).__name__: (e.by, getattr(e, "reason", "")) for e in events
               if isinstance(e, ParticipantDisqualified | AnswerKeyCorrected | ResultsPublished)}
        assert who == {"ParticipantDisqualified": ("Nguyễn Thị Lan", "thi hộ"),
                       "AnswerKeyCorrected": ("Trần Minh", "đáp án sai"), "ResultsPublished": ("Trần Minh", "")}


async def test_of_two_disqualifications_the_earlier_event_wins_in_any_apply_order(system: System) -> None:
    """Two scorers may apply a person's two disqualifications in either order; the one kept is the
    first in the event order, so a result whose barrier lies between them excludes the person."""
    from eventstore.barrier import Barrier, entry_tuple
    from eventstore.events import ParticipantDisqualified
    from eventstore.postgres import transaction
    from projections.apply import Projector
    from projections.live_queries import valid_entries

    s = system
    pid = await s.register()
    await s.entry(pid, 5)
    await s.drain()
    part = s.keys.partition_of(pid)
    barrier = await s.streams.barrier()
    ms = max(entry_tuple(i)[0] for i in barrier.ids.values())
    first, second = (ms + 1, 0, part, 0), (ms + 2, 0, part, 0)
    projector = Projector(s.contest)
    for key, reason in ((second, "later"), (first, "earlier")):  # the later one arrives first
        async with transaction(s.clients.pool) as conn:
            await projector.apply(conn, [(key, ParticipantDisqualified(participant_id=pid, reason=reason, at_ms=0))])
    async with s.clients.pool.connection() as conn:
        row = await (await conn.execute("SELECT reason, ev_ms FROM disqualifications WHERE participant_id = %s",
                                        (pid,))).fetchone()
        assert row == ("earlier", first[0])
        between = Barrier({**barrier.ids, part: f"{ms + 1}-5"})
        assert await valid_entries(conn, s.contest, 1, between) == []
