"""The contest definition as plain, immutable data (DESIGN §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

Selection = Literal["best", "first", "last"]
PredictionTarget = Literal["entries", "participants", "perfect_participants"]
PredictionMode = Literal["absolute", "not_over"]
Choice = Literal["A", "B", "C", "D"]
# Identifiers are opaque, URL-safe, at most 64 characters (DESIGN §6).
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PeriodStatus = Literal["upcoming", "open", "closing", "closed"]
IdCheck = Literal["format", "structure"]


class Period(msgspec.Struct, frozen=True):
    number: int
    name: str
    start_ms: int
    end_ms: int


class PrizeSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    name: str
    count: int


class Group(msgspec.Struct, frozen=True):
    code: str
    name: str
    counts_for_units: bool
    prizes: tuple[PrizeSpec, ...]


class UnitPrizes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weekly_count: int = 1
    once_per_unit: bool = True
    final_count: int = 5
    min_participation_rate: float = 0.0
    weight_participation: float = 0.7
    weight_score: float = 0.3


class UnitTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A participation target for every unit of one kind (the committee's report lists who is below)."""

    kind: str
    rate: float


class Unit(msgspec.Struct, frozen=True):
    code: str
    name: str
    parent_code: str | None
    kind: str
    headcount: int


class Question(msgspec.Struct, frozen=True):
    id: str
    group: str | None
    text: str
    options: dict[str, str]
    answer: Choice


class Rules(msgspec.Struct, frozen=True):
    questions_per_attempt: int = 20
    points_per_correct: int = 5
    time_limit_seconds: int = 1200
    grace_seconds: int = 10
    attempts_per_period: int = 3
    attempt_selection: Selection = "best"
    prediction_target: PredictionTarget = "entries"
    prediction_mode: PredictionMode = "absolute"
    one_prize_per_person: bool = False
    min_age: int = 15
    id_check: IdCheck = "format"  # "structure": province, century and year digits must fit the birth date
    min_plausible_seconds: int = 0  # entries faster than this are flagged for the committee (0 = off)
    prediction_question: str = ""  # the tie-breaker's question, as the quiz page asks it
    freeze_minutes: int = 60  # public rankings and counts frozen for a period's last minutes (DESIGN §3; 0 = off)

    @property
    def max_score(self) -> int:
        return self.questions_per_attempt * self.points_per_correct


class Privacy(msgspec.Struct, frozen=True):
    """The notice a registrant accepts (DESIGN §10): its version, who controls the data, its text."""

    version: str
    controller: str
    notice: str  # the notice's text (the contest folder's file, read by the loader)
    retention_days: int = 90  # after the last close, personal data is erased; results are kept


class Contest(msgspec.Struct, frozen=True):
    slug: str
    title: str
    timezone: str
    rules: Rules
    periods: tuple[Period, ...]
    groups: tuple[Group, ...]
    unit_prizes: UnitPrizes
    units: dict[str, Unit]
    questions: dict[str, Question]
    excluded: frozenset[str]
    unit_targets: tuple[UnitTarget, ...] = ()
    privacy: Privacy | None = None  # None: a test contest that asks no consent
    rehearsal: bool = False  # a rehearsal (thi thử, `cchc up --rehearsal`): its calendar shifted to start now

    def rehearse(self, start_ms: int) -> Contest:
        """This contest as a rehearsal (DESIGN §8): the calendar shifted so that its first period starts at
        `start_ms`, durations and gaps kept, marked as such; a slug of its own so its keys never meet the
        real contest's."""
        shift = start_ms - self.periods[0].start_ms
        periods = tuple(msgspec.structs.replace(p, start_ms=p.start_ms + shift, end_ms=p.end_ms + shift)
                        for p in self.periods)
        slug = self.slug if self.rehearsal else f"{self.slug}-thi-thu"
        return msgspec.structs.replace(self, periods=periods, slug=slug, rehearsal=True)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def group(self, code: str) -> Group | None:
        return next((g for g in self.groups if g.code == code), None)

    def period(self, number: int) -> Period | None:
        return next((p for p in self.periods if p.number == number), None)

    def period_at(self, now_ms: int) -> Period | None:
        """The period open at `now_ms`, if any (periods are [start, end))."""
        return next((p for p in self.periods if p.start_ms <= now_ms < p.end_ms), None)

    def frozen_at(self, period: Period) -> int | None:
        """When the period's public rankings and counts freeze (DESIGN §3): max(start, end − freeze);
        None when the contest has no freeze."""
        if self.rules.freeze_minutes <= 0:
            return None
        return max(period.start_ms, period.end_ms - self.rules.freeze_minutes * 60_000)

    def frozen(self, period: Period, now_ms: int, closed: bool) -> int | None:
        """The period's freeze start when its public answers are frozen at `now_ms` (from the freeze's
        start until its close), else None."""
        at = self.frozen_at(period)
        return at if at is not None and not closed and now_ms >= at else None

    def status(self, period: Period, now_ms: int, closed: bool) -> PeriodStatus:
        """upcoming, open, closing (ended, not yet closed) or closed."""
        if closed:
            return "closed"
        if now_ms < period.start_ms:
            return "upcoming"
        return "open" if now_ms < period.end_ms else "closing"

    def bank(self, group: str) -> list[str]:
        """Question ids a participant of `group` may draw (empty group = every group)."""
        return [q.id for q in self.questions.values() if q.group in (None, group)]

    def target_of(self, kind: str) -> float | None:
        """The participation target of a unit kind, if the contest sets one."""
        return next((t.rate for t in self.unit_targets if t.kind == kind), None)

    def counting_groups(self) -> frozenset[str]:
        return frozenset(g.code for g in self.groups if g.counts_for_units)

    def lineage(self, unit_code: str) -> list[str]:
        """`unit_code`, its parent, …, up to the root of its tree (the loader refuses cycles)."""
        chain = [unit_code]
        while (parent := self.units[chain[-1]].parent_code) is not None:
            if len(chain) > len(self.units):
                raise ValueError(f"unit tree has a cycle at {unit_code}")
            chain.append(parent)
        return chain

    def prize_unit_of(self, unit_code: str) -> str:
        """The root of the unit tree above `unit_code` (the unit that competes for prizes)."""
        return self.lineage(unit_code)[-1]

    def prize_units(self) -> list[Unit]:
        return [u for u in self.units.values() if u.parent_code is None]

    def prize_unit_headcounts(self) -> dict[str, int]:
        totals = {u.code: 0 for u in self.prize_units()}
        for unit in self.units.values():
            totals[self.prize_unit_of(unit.code)] += unit.headcount
        return totals

    def first_start(self) -> datetime:
        return datetime.fromtimestamp(self.periods[0].start_ms / 1000, self.tz)
