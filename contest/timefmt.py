"""Times as the API writes them: ISO-8601 with milliseconds and the contest's offset."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def iso_ms(ms: int, tz: ZoneInfo) -> str:
    """`2022-08-22T08:00:00.000+07:00` for epoch milliseconds `ms`."""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a time without an offset is ambiguous")
    return int(moment.timestamp() * 1000)
