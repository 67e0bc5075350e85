"""Pure ranking rules: order, counted entry, prediction modes, actual values, prize walk."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from contest.model import Group, PrizeSpec
from contest.ranking import (
    Entry,
    actual_value,
    award_prizes,
    counted_entries,
    final_key,
    prediction_error,
    rank,
)

GROUP = Group("cbccvc", "CBCCVC", True, (PrizeSpec("first", "Nhất", 1), PrizeSpec("second", "Nhì", 2),
                                         PrizeSpec("consolation", "KK", 3)))


def entry(attempt: str, pid: str = "p", score: int = 50, duration: int = 1000, prediction: int = 0,
          submitted: int = 0, correct: int | None = None, questions: int = 10) -> Entry:
    return Entry(attempt, pid, "cbccvc", "A", score, score // 5 if correct is None else correct, questions,
                 duration, prediction, submitted)


entries_st = st.lists(
    st.builds(entry, attempt=st.uuids().map(str), pid=st.sampled_from("abcdefgh"),
              score=st.integers(0, 20).map(lambda n: n * 5), duration=st.integers(0, 5000),
              prediction=st.integers(0, 200), submitted=st.integers(0, 10_000)),
    max_size=40, unique_by=lambda e: e.attempt_id)


def test_order_is_score_then_error_then_duration_then_time_then_id() -> None:
    a = entry("a", score=45)
    b = entry("b", score=50, prediction=12)          # error 2
    c = entry("c", score=50, prediction=9, duration=900)   # error 1
    d = entry("d", score=50, prediction=11, duration=900)  # error 1, same duration, later
    d = Entry(d.attempt_id, d.participant_id, d.group, d.unit_code, d.score, d.correct, d.questions,
              d.duration_ms, d.prediction, 5)
    e = entry("e", score=50, prediction=9, duration=900, submitted=5)  # ties d except attempt id
    ranked = rank([a, b, c, d, e], actual=10, mode="absolute")
    assert [r.entry.attempt_id for r in ranked] == ["c", "d", "e", "b", "a"]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]
    assert ranked[0].prediction_error == 1


def test_provisional_order_skips_the_prediction() -> None:
    near = entry("near", prediction=10, duration=2000)
    fast = entry("fast", prediction=999, duration=1000)
    assert [r.entry.attempt_id for r in rank([near, fast], None, "absolute")] == ["fast", "near"]
    assert all(r.prediction_error is None for r in rank([near, fast], None, "absolute"))


def test_not_over_puts_every_overshoot_after_every_prediction_at_or_below() -> None:
    over_by_one = entry("over", prediction=101)
    under_by_ten = entry("under", prediction=90)
    exact = entry("exact", prediction=100)
    absolute = rank([over_by_one, under_by_ten, exact], 100, "absolute")
    not_over = rank([over_by_one, under_by_ten, exact], 100, "not_over")
    assert [r.entry.attempt_id for r in absolute] == ["exact", "over", "under"]
    assert [r.entry.attempt_id for r in not_over] == ["exact", "under", "over"]
    assert not_over[2].prediction_error == 1


def test_actual_value_per_target() -> None:
    es = [entry("1", "a", correct=10), entry("2", "a", correct=9), entry("3", "b", correct=9),
          entry("4", "c", correct=10)]
    assert actual_value(es, "entries") == 4
    assert actual_value(es, "participants") == 3
    assert actual_value(es, "perfect_participants") == 2


def test_counted_entry_best_first_last() -> None:
    early = entry("1", "a", score=30, submitted=1)
    best = entry("2", "a", score=50, submitted=2)
    late = entry("3", "a", score=40, submitted=3)
    for selection, expected in (("best", "2"), ("first", "1"), ("last", "3")):
        counted = counted_entries([late, best, early], selection, 10, "absolute")  # type: ignore[arg-type]
        assert [c.attempt_id for c in counted] == [expected]


def test_best_counted_entry_uses_the_prediction_once_known() -> None:
    fast_far = entry("1", "a", duration=100, prediction=0)
    slow_near = entry("2", "a", duration=900, prediction=100)
    assert counted_entries([fast_far, slow_near], "best", None, "absolute")[0].attempt_id == "1"
    assert counted_entries([fast_far, slow_near], "best", 100, "absolute")[0].attempt_id == "2"


def test_prize_walk_fills_slots_in_order_and_skips() -> None:
    ranking = rank([entry(str(i), f"p{i}", score=50 - i) for i in range(10)], 0, "absolute")
    awards = award_prizes(ranking, GROUP, skip=frozenset({"p1"}))
    assert [(a.prize, a.ranked.entry.participant_id) for a in awards] == [
        ("first", "p0"), ("second", "p2"), ("second", "p3"), ("consolation", "p4"), ("consolation", "p5"),
        ("consolation", "p6")]
    assert awards[1].ranked.rank == 3  # a prize keeps the participant's rank in the final leaderboard


def test_prize_walk_with_fewer_people_than_prizes() -> None:
    awards = award_prizes(rank([entry("1")], 0, "absolute"), GROUP)
    assert [a.prize for a in awards] == ["first"]


@given(entries_st, st.integers(0, 200), st.sampled_from(["absolute", "not_over"]))
def test_ranking_is_a_total_order_independent_of_input_order(entries: list[Entry], actual: int, mode: str) -> None:
    shuffled = entries[:]
    random.Random(len(entries)).shuffle(shuffled)
    one = rank(entries, actual, mode)  # type: ignore[arg-type]
    two = rank(shuffled, actual, mode)  # type: ignore[arg-type]
    assert [r.entry for r in one] == [r.entry for r in two]
    keys = [final_key(r.entry, actual, mode) for r in one]  # type: ignore[arg-type]
    assert all(a < b for a, b in itertools.pairwise(keys))  # strict: no two entries tie


@given(entries_st, st.integers(0, 200), st.sampled_from(["best", "first", "last"]))
def test_one_counted_entry_per_participant_and_it_is_one_of_theirs(entries: list[Entry], actual: int,
                                                                    selection: str) -> None:
    counted = counted_entries(entries, selection, actual, "absolute")  # type: ignore[arg-type]
    assert sorted(c.participant_id for c in counted) == sorted({e.participant_id for e in entries})
    assert set(counted) <= set(entries)
    if selection == "best":
        for c in counted:
            mine = [e for e in entries if e.participant_id == c.participant_id]
            assert final_key(c, actual, "absolute") == min(final_key(e, actual, "absolute") for e in mine)


@given(entries_st, st.frozensets(st.sampled_from("abcdefgh")))
def test_prizes_never_exceed_the_table_and_never_go_to_skipped(entries: list[Entry], skip: frozenset[str]) -> None:
    counted = counted_entries(entries, "best", 0, "absolute")
    awards = award_prizes(rank(counted, 0, "absolute"), GROUP, skip)
    assert len(awards) <= sum(p.count for p in GROUP.prizes)
    assert not {a.ranked.entry.participant_id for a in awards} & skip
    assert len({a.ranked.entry.participant_id for a in awards}) == len(awards)
    assert [a.ranked.rank for a in awards] == sorted(a.ranked.rank for a in awards)


def test_prediction_error_is_absolute() -> None:
    assert prediction_error(7, 10) == prediction_error(13, 10) == 3
