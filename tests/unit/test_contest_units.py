"""Pure unit rules: the formula over the tree, ordering, weekly once-per-unit, final prizes."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from contest.closing import close_period, final_units, period_facts
from contest.model import Contest
from contest.ranking import Entry
from contest.units import UnitTally, aggregate, unit_ranking, unit_winners


def tally(pid: str, unit: str, score: int) -> UnitTally:
    return UnitTally(pid, unit, score)


def test_prize_units_aggregate_their_descendants(contest: Contest) -> None:
    # A (4) + A1 (2) = headcount 6; C (10) + C1 (0) = 10; B = 5.
    stats = unit_ranking(contest, aggregate([tally("p1", "A", 25), tally("p2", "A1", 15), tally("p3", "C1", 25)],
                                            {"A": 2, "A1": 3, "C1": 1}))
    by = {s.unit_code: s for s in stats}
    assert by["A"].headcount == 6 and by["A"].participants == 2 and by["A"].entries == 5
    assert by["A"].participation_rate == 2 / 6
    assert by["A"].avg_score_ratio == 40 / 2 / 25
    assert by["A"].unit_score == round(0.7 * (2 / 6) + 0.3 * (40 / 2 / 25), 6)
    assert by["C"].participants == 1 and by["C"].headcount == 10
    assert by["B"].participants == 0 and by["B"].avg_score_ratio == 0.0 and by["B"].unit_score == 0.0
    assert [s.unit_code for s in stats] == ["A", "C", "B"]
    assert [s.rank for s in stats] == [1, 2, 3]


def test_participation_rate_is_capped_at_one(contest: Contest) -> None:
    people = [tally(f"p{i}", "B", 25) for i in range(8)]  # 8 people, headcount 5
    b = next(s for s in unit_ranking(contest, aggregate(people, {})) if s.unit_code == "B")
    assert b.participation_rate == 1.0 and b.unit_score == 1.0


def test_equal_scores_compare_exactly_and_fall_to_the_next_key(contest: Contest) -> None:
    # A: 3 of 6 with 10 points, C: 3 of 10 with 45 — both 0.39 exactly; in binary floating point
    # A's is 0.38999999999999996 and C's 0.39, which put C first. Equal scores and participants: code.
    people = [tally("a1", "A", 5), tally("a2", "A", 5), tally("a3", "A", 0),
              tally("c1", "C", 25), tally("c2", "C", 20), tally("c3", "C", 0)]
    stats = unit_ranking(contest, aggregate(people, {}))
    assert [s.unit_code for s in stats] == ["A", "C", "B"]
    assert stats[0].unit_score == stats[1].unit_score == 0.39


def test_minimum_rate_is_compared_exactly(contest: Contest) -> None:
    # 3 of 10 is 0.3 exactly: at the minimum, so eligible.
    stats = unit_ranking(contest, aggregate([tally(f"c{i}", "C", 25) for i in range(3)], {}))
    assert [s.unit_code for s in unit_winners(stats, 1, 0.3)] == ["C"]


def test_ties_break_on_participants_then_code(contest: Contest) -> None:
    stats = unit_ranking(contest, [])
    assert [s.unit_code for s in stats] == ["A", "B", "C"]  # all zero: code asc


def test_no_participants_or_below_minimum_rate_wins_nothing(contest: Contest) -> None:
    stats = unit_ranking(contest, aggregate([tally("p1", "C", 25)], {}))  # C: 1/10
    assert [s.unit_code for s in unit_winners(stats, 3, 0.0)] == ["C"]
    assert unit_winners(stats, 3, 0.2) == []


def test_once_per_unit_skips_earlier_weekly_winners(contest: Contest) -> None:
    stats = unit_ranking(contest, aggregate([tally("p1", "A", 25), tally("p2", "B", 5)], {}))
    assert [s.unit_code for s in unit_winners(stats, 1, 0.0)] == ["A"]
    assert [s.unit_code for s in unit_winners(stats, 1, 0.0, frozenset({"A"}))] == ["B"]


def entry(attempt: str, pid: str, unit: str | None, score: int, group: str = "cbccvc") -> Entry:
    return Entry(attempt, pid, group, unit, score, score // 5, 5, 1000, 0, int(attempt))


def test_close_period_weekly_prize_honours_once_per_unit_setting(contest: Contest) -> None:
    entries = [entry("1", "a", "A", 25), entry("2", "b", "B", 5)]
    again = close_period(contest, period_facts(contest, entries), earlier_unit_winners=frozenset({"A"}))
    assert [u.unit_code for u in again.unit_awards] == ["B"]
    relaxed = msgspec.structs.replace(contest, unit_prizes=msgspec.structs.replace(
        contest.unit_prizes, once_per_unit=False))
    assert [u.unit_code for u in close_period(relaxed, period_facts(relaxed, entries),
                                              earlier_unit_winners=frozenset({"A"})).unit_awards] == ["A"]


def test_only_counting_groups_count_for_units(contest: Contest) -> None:
    entries = [entry("1", "a", "B", 25, group="nhan_dan"), entry("2", "b", "C", 5)]
    units = {u.unit_code: u for u in close_period(contest, period_facts(contest, entries)).units}
    assert units["B"].participants == 0 and units["B"].entries == 0
    assert units["C"].participants == 1 and units["C"].entries == 1


def test_final_units_ignore_weekly_wins_and_take_final_count(contest: Contest) -> None:
    aggregates = aggregate([tally("a", "A", 25), tally("a", "A", 15), tally("b", "B", 25), tally("c", "C", 5)], {})
    ranking, winners = final_units(contest, aggregates)
    assert len(winners) == contest.unit_prizes.final_count == 2
    a = next(s for s in ranking if s.unit_code == "A")
    assert a.participants == 1  # distinct across periods
    assert a.avg_score_ratio == (25 + 15) / 2 / 25  # mean over the counted entries of every period


@given(st.lists(st.tuples(st.sampled_from("abcdefghij"), st.sampled_from(["A", "A1", "B", "C", "C1"]),
                          st.integers(0, 5).map(lambda n: n * 5)), max_size=30))
def test_unit_ranking_lists_every_prize_unit_once_in_order(contest: Contest,
                                                          rows: list[tuple[str, str, int]]) -> None:
    seen: dict[str, str] = {}
    tallies = [tally(p, seen.setdefault(p, u), s) for p, u, s in rows]  # a person has one unit
    stats = unit_ranking(contest, aggregate(tallies, {}))
    assert sorted(s.unit_code for s in stats) == ["A", "B", "C"]
    keys = [(-s.unit_score, -s.participants, s.unit_code) for s in stats]
    assert keys == sorted(keys)
    assert sum(s.participants for s in stats) == len(seen)
    assert all(0.0 <= s.participation_rate <= 1.0 and 0.0 <= s.avg_score_ratio <= 1.0 for s in stats)
