"""Unit (collective) rules: stats over the unit tree, unit ranking, weekly and final unit prizes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

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


def unit_ranking(contest: Contest, aggregates: Iterable[UnitAggregate]) -> list[UnitStat]:
    """Every prize unit ranked: unit_score desc → participants desc → unit code asc.

    A prize unit's participants, scores and entries are its own plus all its descendants'.
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
    weights = contest.unit_prizes
    max_score = contest.rules.max_score
    rows = []
    for code, headcount in headcounts.items():
        rate = min(1.0, participants[code] / headcount)
        ratio = sums[code] / counts[code] / max_score if counts[code] else 0.0
        score = weights.weight_participation * rate + weights.weight_score * ratio
        rows.append((code, rate, ratio, score))
    rows.sort(key=lambda r: (-r[3], -participants[r[0]], r[0]))
    return [UnitStat(i, code, contest.units[code].name, headcounts[code], participants[code],
                     entries[code], rate, ratio, score)
            for i, (code, rate, ratio, score) in enumerate(rows, start=1)]


def eligible(stat: UnitStat, min_rate: float) -> bool:
    """A unit with no participants or below the minimum participation rate wins nothing."""
    return stat.participants > 0 and stat.participation_rate >= min_rate


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
