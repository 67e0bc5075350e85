"""Unit (collective) rules: stats over the unit tree, unit ranking, weekly and final unit prizes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from fractions import Fraction

import msgspec

from contest.model import Contest


class UnitTally(msgspec.Struct, frozen=True, gc=False):
    """What one counted entry contributes: its participant, unit and counted score."""

    participant_id: str
    unit_code: str
    score: int


class UnitAggregate(msgspec.Struct, frozen=True):
    """Per unit code (any node of the tree): distinct participants and their counted scores."""

    unit_code: str
    participants: int
    score_sum: int
    score_count: int
    entries: int


class UnitStat(msgspec.Struct, frozen=True):
    """A prize unit's published figures; the ranking compared their exact values (see `exact`)."""

    rank: int
    unit_code: str
    unit_name: str
    headcount: int
    participants: int
    entries: int
    participation_rate: float
    avg_score_ratio: float
    unit_score: float


def aggregate(tallies: Iterable[UnitTally], entries_by_unit: dict[str, int]) -> list[UnitAggregate]:
    """Fold counted entries per unit code (a participant is counted once per unit)."""
    people: dict[str, set[str]] = defaultdict(set)
    sums: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for t in tallies:
        people[t.unit_code].add(t.participant_id)
        sums[t.unit_code] += t.score
        counts[t.unit_code] += 1
    codes = set(people) | set(entries_by_unit)
    return [UnitAggregate(c, len(people[c]), sums[c], counts[c], entries_by_unit.get(c, 0))
            for c in sorted(codes)]


def exact(value: float) -> Fraction:
    """A contest-file number as written (0.7 is 7/10, not the binary float nearest to it)."""
    return Fraction(str(value))


def unit_ranking(contest: Contest, aggregates: Iterable[UnitAggregate]) -> list[UnitStat]:
    """Every prize unit ranked: unit_score desc → participants desc → unit code asc.

    A prize unit's participants, scores and entries are its own plus all its descendants'. Scores
    are compared as exact fractions of the counts and the weights as written, so mathematically
    equal scores tie and fall to the next key; the published unit_score is rounded to 6 decimals.
    """
    headcounts = contest.prize_unit_headcounts()
    participants = dict.fromkeys(headcounts, 0)
    sums = dict.fromkeys(headcounts, 0)
    counts = dict.fromkeys(headcounts, 0)
    entries = dict.fromkeys(headcounts, 0)
    for a in aggregates:
        root = contest.prize_unit_of(a.unit_code)
        participants[root] += a.participants
        sums[root] += a.score_sum
        counts[root] += a.score_count
        entries[root] += a.entries
    w_rate, w_score = exact(contest.unit_prizes.weight_participation), exact(contest.unit_prizes.weight_score)
    max_score = contest.rules.max_score
    rows = []
    for code, headcount in headcounts.items():
        rate = participation_rate(participants[code], headcount)
        ratio = Fraction(sums[code], counts[code] * max_score) if counts[code] else Fraction(0)
        rows.append((code, rate, ratio, w_rate * rate + w_score * ratio))
    rows.sort(key=lambda r: (-r[3], -participants[r[0]], r[0]))
    return [UnitStat(i, code, contest.units[code].name, headcounts[code], participants[code],
                     entries[code], float(rate), float(ratio), float(round(score, 6)))
            for i, (code, rate, ratio, score) in enumerate(rows, start=1)]


def participation_rate(participants: int, headcount: int) -> Fraction:
    """participants / headcount, capped at 1 (a unit with headcount 0 has no rate: 0)."""
    return min(Fraction(1), Fraction(participants, headcount)) if headcount else Fraction(0)


def eligible(stat: UnitStat, min_rate: float) -> bool:
    """A unit with no participants or below the minimum participation rate wins nothing."""
    return stat.participants > 0 and participation_rate(stat.participants, stat.headcount) >= exact(min_rate)


def unit_winners(ranking: Sequence[UnitStat], count: int, min_rate: float,
                 skip: frozenset[str] = frozenset()) -> list[UnitStat]:
    """The top `count` eligible units, skipping `skip` (earlier weekly winners, once-per-unit)."""
    winners: list[UnitStat] = []
    for stat in ranking:
        if len(winners) == count:
            break
        if stat.unit_code in skip or not eligible(stat, min_rate):
            continue
        winners.append(stat)
    return winners
