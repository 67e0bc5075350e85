"""Participation against targets: every unit of the tree, its people and its kind's target (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from contest.model import Contest
from contest.units import exact, participation_rate


class UnitParticipation(msgspec.Struct, frozen=True):
    """One unit with its descendants: headcount and participants are its own plus theirs."""

    unit_code: str
    unit_name: str
    parent_code: str | None
    kind: str
    headcount: int
    participants: int
    participation_rate: float
    target: float | None
    below_target: bool


def participation(contest: Contest, participants_by_unit: Mapping[str, int]) -> list[UnitParticipation]:
    """Every unit in the order of units.csv. `participants_by_unit`: distinct participants of the counting
    groups with a valid entry, by the unit they registered to. A unit whose tree has headcount 0 has rate 0
    and is never below its target (nobody is expected); rates are compared with targets exactly."""
    headcounts = {code: 0 for code in contest.units}
    people = {code: 0 for code in contest.units}
    for unit in contest.units.values():
        for code in contest.lineage(unit.code):
            headcounts[code] += unit.headcount
            people[code] += participants_by_unit.get(unit.code, 0)
    rows = []
    for unit in contest.units.values():
        rate = participation_rate(people[unit.code], headcounts[unit.code])
        target = contest.target_of(unit.kind)
        below = target is not None and headcounts[unit.code] > 0 and rate < exact(target)
        rows.append(UnitParticipation(unit.code, unit.name, unit.parent_code, unit.kind, headcounts[unit.code],
                                      people[unit.code], float(rate), target, below))
    return rows

