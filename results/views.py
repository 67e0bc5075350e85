"""Response bodies of the results API (DESIGN §6), as msgspec types."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contest.model import PeriodStatus
from contest.participation import UnitParticipation
from contest.units import UnitStat

# DESIGN §3, the scoreboard freeze: the answer as it stood at this time, the freeze's start, kept until the
# period's close; null when not frozen.
FrozenAt = Annotated[str | None, msgspec.Meta(
    description="while frozen (the period's last minutes, until its close): the freeze's start, which the"
                " answer stands at (ISO-8601 with the contest's offset); null when not frozen")]


class PeriodOut(msgspec.Struct):
    number: int
    name: str
    start: str
    end: str
    status: PeriodStatus


class PeriodsOut(msgspec.Struct):
    periods: list[PeriodOut]


class LeaderboardEntry(msgspec.Struct):
    rank: int
    participant_id: str
    display_name: str
    unit_code: str | None
    unit_name: str | None
    score: int
    correct: int
    duration_ms: int
    prediction: int
    prediction_error: int | None
    submitted_at: str
    attempt_id: str


class LeaderboardOut(msgspec.Struct):
    period: int
    group: str
    final: bool
    total: int
    entries: list[LeaderboardEntry]
    frozen_at: FrozenAt


class AttemptOut(msgspec.Struct):
    attempt_id: str
    score: int
    correct: int
    duration_ms: int
    prediction: int
    submitted_at: str


class ParticipantOut(msgspec.Struct):
    participant_id: str
    period: int
    final: bool
    rank: int | None
    best: LeaderboardEntry | None
    attempts: list[AttemptOut]
    frozen_at: FrozenAt


class UnitsOut(msgspec.Struct):
    period: int
    final: bool
    entries: list[UnitStat]
    frozen_at: FrozenAt


class IndividualPrize(msgspec.Struct):
    group: str
    prize: str
    prize_name: str
    rank: int
    participant_id: str
    display_name: str
    unit_code: str | None
    score: int
    duration_ms: int
    prediction: int
    prediction_error: int
    attempt_id: str


class UnitPrize(msgspec.Struct):
    prize: str
    rank: int
    unit_code: str
    unit_name: str
    unit_score: float


class PrizesOut(msgspec.Struct):
    period: int
    revision: int
    actual: int
    results_digest: str
    individual: list[IndividualPrize]
    unit: list[UnitPrize]


class FinalUnitRow(msgspec.Struct):
    rank: int
    unit_code: str
    unit_name: str
    unit_score: float
    participants: int
    entries: int


class FinalUnitPrize(FinalUnitRow):
    prize: str


class FinalOut(msgspec.Struct):
    unit: list[FinalUnitPrize]
    ranking: list[FinalUnitRow]


class ParticipationOut(msgspec.Struct):
    period: int | None
    units: list[UnitParticipation]
    frozen_at: FrozenAt
