"""The shape of contest.toml: every table and key it may hold, typed; anything else is an error."""

from __future__ import annotations

from datetime import datetime

import msgspec

from contest.model import PrizeSpec, Rules, UnitPrizes, UnitTarget


class ContestTable(Rules, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[contest]: the contest's name and time zone, then the rules (defaults = Nghệ An 2022)."""

    slug: str
    title: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"

    def rules(self) -> Rules:
        return Rules(**{name: getattr(self, name) for name in Rules.__struct_fields__})


class PeriodTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[[periods]]: [start, end); a datetime without an offset is in the contest's time zone."""

    name: str | None = None
    start: datetime
    end: datetime


class ScheduleTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[schedule]: periods relative to the stack's start (the demo), instead of [[periods]]."""

    count: int
    period_seconds: int
    starts_in_seconds: int = 0
    last_period_seconds: int | None = None  # the last period's length, if not period_seconds (the demo's open week)


class GroupTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[[groups]]: `counts_for_units` defaults to true for `cbccvc` only; prizes to 1/2/3/10."""

    code: str
    name: str | None = None
    counts_for_units: bool | None = None
    prizes: list[PrizeSpec] | None = None


class PrivacyTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[privacy]: the notice a registrant accepts; `notice` names a file of the contest folder."""

    version: str
    controller: str
    notice: str
    retention_days: int = 90


class ContestFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    contest: ContestTable
    periods: list[PeriodTable] | None = None
    schedule: ScheduleTable | None = None
    groups: list[GroupTable]
    unit_prizes: UnitPrizes = UnitPrizes()
    unit_targets: list[UnitTarget] = []
    privacy: PrivacyTable | None = None
