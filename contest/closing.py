"""Closing a period as a pure function: actual value, final rankings, prizes, the /prizes document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from contest.digest import results_digest
from contest.model import Contest, Period
from contest.ranking import Award, Entry, Ranked, actual_value, award_prizes, counted_entries, rank
from contest.units import UnitAggregate, UnitStat, UnitTally, aggregate, unit_ranking, unit_winners


class PeriodOutcome(msgspec.Struct, frozen=True):
    actual: int
    rankings: dict[str, list[Ranked]]
    awards: dict[str, list[Award]]
    units: list[UnitStat]
    unit_awards: list[UnitStat]


class PeriodFacts(msgspec.Struct, frozen=True, gc=False):
    """What a close needs of a period's valid entries: the actual value, each participant's counted
    entry, and per unit code the valid entries of the counting groups (`entries`: how many in all)."""

    actual: int
    counted: list[Entry]
    unit_entries: dict[str, int]
    entries: int


def period_facts(contest: Contest, entries: Iterable[Entry]) -> PeriodFacts:
    """PeriodFacts from every valid entry (the database computes the same at scale: live_queries)."""
    rules = contest.rules
    entries = list(entries)
    actual = actual_value(entries, rules.prediction_target)
    counted = counted_entries(entries, rules.attempt_selection, actual, rules.prediction_mode)
    return PeriodFacts(actual, counted, unit_entry_counts(contest, entries), len(entries))


def close_period(contest: Contest, facts: PeriodFacts, *,
                 earlier_winners: frozenset[str] = frozenset(),
                 earlier_unit_winners: frozenset[str] = frozenset()) -> PeriodOutcome:
    """Final results of one period from the facts of its valid entries (every group, every attempt).

    `earlier_winners`: participants with an individual prize in an earlier closed period
    (skipped when one_prize_per_person). `earlier_unit_winners`: units with a weekly prize in an
    earlier closed period (skipped when once_per_unit).
    """
    rules = contest.rules
    actual, counted = facts.actual, facts.counted
    skip = earlier_winners if rules.one_prize_per_person else frozenset()
    rankings: dict[str, list[Ranked]] = {}
    awards: dict[str, list[Award]] = {}
    for group in contest.groups:
        ranking = rank((e for e in counted if e.group == group.code), actual, rules.prediction_mode)
        rankings[group.code] = ranking
        awards[group.code] = award_prizes(ranking, group, skip)
    units = unit_ranking(contest, aggregate(_tallies(contest, counted), facts.unit_entries))
    up = contest.unit_prizes
    unit_skip = earlier_unit_winners if up.once_per_unit else frozenset()
    unit_awards = unit_winners(units, up.weekly_count, up.min_participation_rate, unit_skip)
    return PeriodOutcome(actual, rankings, awards, units, unit_awards)


def unit_aggregates(contest: Contest, entries: list[Entry], counted: list[Entry]) -> list[UnitAggregate]:
    """Per unit code: the counting groups' distinct participants, counted scores and valid entries, over
    the entries of one period or of several (`counted`: one per participant and period)."""
    return aggregate(_tallies(contest, counted), unit_entry_counts(contest, entries))


def _tallies(contest: Contest, counted: list[Entry]) -> list[UnitTally]:
    counting = contest.counting_groups()
    return [UnitTally(e.participant_id, e.unit_code, e.score) for e in counted
            if e.group in counting and e.unit_code is not None]


def unit_entry_counts(contest: Contest, entries: Iterable[Entry]) -> dict[str, int]:
    """Per unit code, the counting groups' valid entries."""
    counting = contest.counting_groups()
    return dict(Counter(e.unit_code for e in entries if e.group in counting and e.unit_code))


def prizes_document(contest: Contest, period: Period, revision: int, outcome: PeriodOutcome,
                    display_names: Mapping[str, str]) -> dict[str, Any]:
    """The /prizes answer, `results_digest` included (computed over the rest of it)."""
    individual = []
    for group in contest.groups:
        for award in outcome.awards[group.code]:
            e = award.ranked.entry
            individual.append({
                "group": group.code, "prize": award.prize, "prize_name": award.prize_name,
                "rank": award.ranked.rank, "participant_id": e.participant_id,
                "display_name": display_names.get(e.participant_id, ""),
                "unit_code": e.unit_code, "score": e.score, "duration_ms": e.duration_ms,
                "prediction": e.prediction, "prediction_error": award.ranked.prediction_error,
                "attempt_id": e.attempt_id,
            })
    unit = [{"prize": "weekly", "rank": s.rank, "unit_code": s.unit_code,
             "unit_name": s.unit_name, "unit_score": s.unit_score} for s in outcome.unit_awards]
    document: dict[str, Any] = {"period": period.number, "revision": revision,
                                "actual": outcome.actual, "individual": individual, "unit": unit}
    document["results_digest"] = results_digest(document)
    return document


def final_units(contest: Contest,
                aggregates: Iterable[UnitAggregate]) -> tuple[list[UnitStat], list[UnitStat]]:
    """Whole-contest unit ranking and the final unit prizes (weekly wins do not matter here).

    `aggregates`: per unit code, distinct participants across periods, the sum and number of
    their counted scores (one per participant per period) and the valid entries.
    """
    ranking = unit_ranking(contest, aggregates)
    up = contest.unit_prizes
    return ranking, unit_winners(ranking, up.final_count, up.min_participation_rate)


def final_document(ranking: list[UnitStat], winners: list[UnitStat]) -> dict[str, Any]:
    """The /final answer."""
    def row(s: UnitStat) -> dict[str, Any]:
        return {"rank": s.rank, "unit_code": s.unit_code, "unit_name": s.unit_name,
                "unit_score": s.unit_score, "participants": s.participants, "entries": s.entries}
    return {"unit": [{"prize": "final", **row(s)} for s in winners], "ranking": [row(s) for s in ranking]}


def unit_rows(stats: list[UnitStat]) -> list[dict[str, Any]]:
    """Unit ranking entries as the /units answer lists them."""
    return [msgspec.structs.asdict(s) for s in stats]
