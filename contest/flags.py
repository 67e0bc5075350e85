"""What the committee reviews before publishing (DESIGN §3 "Flags"): entries faster than plausible,
many registrations from one client address, entries that repeat another's answers and prediction
exactly. Flags are never an automatic disqualification."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import msgspec

FlagKind = Literal["too_fast", "shared_address", "copied_entry"]
SHARED_ADDRESS_MIN = 5  # registrations from one address before its participants are flagged


class Submitted(msgspec.Struct, frozen=True):
    """An entry as the flags see it."""

    attempt_id: str
    participant_id: str
    duration_ms: int
    answers: dict[str, str]
    prediction: int


class Flag(msgspec.Struct, frozen=True):
    kind: FlagKind
    participant_id: str
    attempt_id: str | None
    detail: str


def too_fast(entries: Iterable[Submitted], min_plausible_seconds: int) -> list[Flag]:
    if min_plausible_seconds <= 0:
        return []
    return [Flag("too_fast", e.participant_id, e.attempt_id,
                 f"submitted {e.duration_ms / 1000:.1f} s after the start (plausible: ≥ {min_plausible_seconds} s)")
            for e in entries if e.duration_ms < min_plausible_seconds * 1000]


def shared_addresses(registrations_per_address: dict[str, int], minimum: int = SHARED_ADDRESS_MIN) -> list[Flag]:
    """Participants (with an entry) registered from an address that `minimum` or more registered from."""
    return [Flag("shared_address", pid, None, f"{n} registrations from the same client address")
            for pid, n in sorted(registrations_per_address.items()) if n >= minimum]


def copied_entries(entries: Iterable[Submitted]) -> list[Flag]:
    """Entries of different participants with exactly the same answers and prediction (an empty
    answer sheet copies nothing)."""
    same: dict[tuple[frozenset[tuple[str, str]], int], list[Submitted]] = defaultdict(list)
    for e in entries:
        if e.answers:
            same[(frozenset(e.answers.items()), e.prediction)].append(e)
    flags = []
    for group in same.values():
        if len({e.participant_id for e in group}) > 1:
            for e in group:
                others = sorted({o.participant_id for o in group} - {e.participant_id})
                flags.append(Flag("copied_entry", e.participant_id, e.attempt_id,
                                  f"the same answers and prediction as {', '.join(others[:3])}"
                                  + (f" and {len(others) - 3} more" if len(others) > 3 else "")))
    return flags


def review(entries: list[Submitted], registrations_per_address: dict[str, int], min_plausible_seconds: int
           ) -> list[Flag]:
    """Every flag of a period, in the order the committee reads them."""
    return [*too_fast(entries, min_plausible_seconds), *shared_addresses(registrations_per_address),
            *copied_entries(entries)]
