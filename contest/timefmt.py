"""Times as the API writes them: ISO-8601 with milliseconds and the contest's offset."""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo


def iso_ms(ms: int, tz: ZoneInfo) -> str:
    """`2022-08-22T08:00:00.000+07:00` for epoch milliseconds `ms`."""
    second, milli = divmod(int(ms), 1000)
    head, offset = _iso_second(second, tz)
    return f"{head}.{milli:03d}{offset}"


@functools.lru_cache(maxsize=64)
def _iso_second(second: int, tz: ZoneInfo) -> tuple[str, str]:
    """The date and time of `second`, and its offset: formatted once per second (a receipt is written
    per submission, thousands a second)."""
    text = datetime.fromtimestamp(second, tz).isoformat()
    return text[:19], text[19:]


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a time without an offset is ambiguous")
    return int(moment.timestamp() * 1000)
