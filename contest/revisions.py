"""What changed in a period's prize list between two revisions (DESIGN §6b): one line per participant
who entered the list, left it, or moved within it (another prize or another rank)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

Change = Literal["entered", "left", "moved"]
ORDER: dict[Change, int] = {"entered": 0, "moved": 1, "left": 2}


class Placing(msgspec.Struct, frozen=True):
    prize: str  # first / second / third / consolation
    prize_name: str
    rank: int


class PrizeChange(msgspec.Struct, frozen=True):
    group: str
    participant_id: str
    display_name: str
    change: Change
    before: Placing | None  # None: not in the list then
    after: Placing | None


def _placings(document: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, Placing]]:
    return {(p["group"], p["participant_id"]): (p["display_name"], Placing(p["prize"], p["prize_name"], p["rank"]))
            for p in document["individual"]}


def prize_changes(before: Mapping[str, Any], after: Mapping[str, Any],
                  group_order: Sequence[str] = ()) -> list[PrizeChange]:
    """The individual prize lists of two /prizes documents compared: who entered (with the prize), who
    left (with the prize they had), who moved (both prizes and ranks). Unchanged winners are not listed.
    Ordered by group (as `group_order` lists them), then entered, moved, left, then rank."""
    old, new = _placings(before), _placings(after)
    changes = []
    for key in old.keys() | new.keys():
        was, now = old.get(key), new.get(key)
        if was is not None and now is not None and was[1] == now[1]:
            continue
        kind: Change = "entered" if was is None else "left" if now is None else "moved"
        either = now or was
        name = either[0] if either is not None else ""
        changes.append(PrizeChange(key[0], key[1], name, kind, was[1] if was else None, now[1] if now else None))
    groups = {g: i for i, g in enumerate(group_order)}

    def order(c: PrizeChange) -> tuple[int, str, int, int, str]:
        placing = c.after or c.before
        return (groups.get(c.group, len(groups)), c.group, ORDER[c.change], placing.rank if placing else 0,
                c.participant_id)

    return sorted(changes, key=order)
