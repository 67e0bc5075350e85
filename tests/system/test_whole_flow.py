"""The whole flow on real servers: registration → attempts → submissions → close → prizes → final."""

from __future__ import annotations

from contest.digest import results_digest
from tests.harness import System


async def test_whole_contest_to_final_prizes(system: System) -> None:
    s = system
    alice = await s.register(unit_code="A")
    bob = await s.register(unit_code="A1")
    chi = await s.register(unit_code="B")
    dan = await s.register(group="nhan_dan", unit_code=None)
    await s.entry(alice, correct=5, prediction=4, after=100)
    await s.entry(bob, correct=5, prediction=4, after=90)
    await s.entry(chi, correct=3, prediction=2)
    await s.entry(dan, correct=4, prediction=4)
    await s.drain()

    board = await s.ok("/v1/periods/1/leaderboard?group=cbccvc")
    assert board["final"] is False and board["total"] == 3
    assert [e["participant_id"] for e in board["entries"]] == [bob, alice, chi]
    assert board["entries"][0]["prediction_error"] is None

    closed = await s.close(1)
    assert closed["period"] == 1 and closed["revision"] == 1
    prizes = await s.ok("/v1/periods/1/prizes")
    assert prizes["actual"] == 4  # entries, every group
    assert prizes["results_digest"] == closed["results_digest"] == results_digest(prizes)
    cb = [p for p in prizes["individual"] if p["group"] == "cbccvc"]
    assert [(p["prize"], p["participant_id"]) for p in cb] == [
        ("first", bob), ("second", alice), ("consolation", chi)]
    assert prizes["unit"][0]["unit_code"] == "A"  # 2 of 6 people, top scores

    periods = await s.ok("/v1/periods")
    assert [p["status"] for p in periods["periods"]] == ["closed", "open"]

    await s.entry(chi, correct=5, prediction=1)
    await s.drain()
    await s.close(2)
    final = await s.ok("/v1/final")
    assert [u["prize"] for u in final["unit"]] == ["final", "final"]
    assert {u["unit_code"] for u in final["ranking"]} == {"A", "B", "C"}
