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


def _too_fast_detail(duration_ms: int, min_plausible_seconds: int) -> str:
    return f"submitted {duration_ms / 1000:.1f} s after the start (plausible: ≥ {min_plausible_seconds} s)"


def _shared_detail(registrations: int) -> str:
    return f"{registrations} registrations from the same client address"


def _copied_detail(others: list[str]) -> str:
    return (f"the same answers and prediction as {', '.join(others[:3])}"
            + (f" and {len(others) - 3} more" if len(others) > 3 else ""))


def too_fast(entries: Iterable[Submitted], min_plausible_seconds: int) -> list[Flag]:
    if min_plausible_seconds <= 0:
        return []
    return [Flag("too_fast", e.participant_id, e.attempt_id, _too_fast_detail(e.duration_ms, min_plausible_seconds))
            for e in entries if e.duration_ms < min_plausible_seconds * 1000]


def shared_addresses(registrations_per_address: dict[str, int], minimum: int = SHARED_ADDRESS_MIN) -> list[Flag]:
    """Participants (with an entry) registered from an address that `minimum` or more registered from."""
    return [Flag("shared_address", pid, None, _shared_detail(n))
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
                flags.append(Flag("copied_entry", e.participant_id, e.attempt_id, _copied_detail(others)))
    return flags


def review(entries: list[Submitted], registrations_per_address: dict[str, int], min_plausible_seconds: int
           ) -> list[Flag]:
    """Every flag of a period, in the order the committee reads them."""
    return [*too_fast(entries, min_plausible_seconds), *shared_addresses(registrations_per_address),
            *copied_entries(entries)]


# -- the same flags as cases for the desk, each with the entries behind it --------------------------------

class FlagEntry(msgspec.Struct, frozen=True):
    """An entry behind a flag (for a shared address: the participant's best entry of the period)."""

    participant_id: str
    display_name: str
    unit_code: str | None
    attempt_id: str
    score: int
    duration_ms: int
    submitted_ms: int
    prediction: int
    disqualified: bool


class FlagCase(msgspec.Struct, frozen=True):
    """One thing to review: an entry too fast, the participants registered from one address (how many
    registrations it had), or the entries sharing one answer sheet and prediction."""

    kind: FlagKind
    entries: list[FlagEntry]
    registrations: int = 0  # shared_address: registrations from the address


def flags_of(cases: Iterable[FlagCase], min_plausible_seconds: int) -> list[Flag]:
    """The cases as the flags review() gives for the same entries (the JSON route's and the export's list):
    too fast in the cases' order, shared addresses by participant, copies case by case."""
    fast, shared, copied = [], [], []
    for case in cases:
        if case.kind == "too_fast":
            fast += [Flag("too_fast", e.participant_id, e.attempt_id,
                          _too_fast_detail(e.duration_ms, min_plausible_seconds)) for e in case.entries]
        elif case.kind == "shared_address":
            shared += [Flag("shared_address", e.participant_id, None, _shared_detail(case.registrations))
                       for e in case.entries]
        else:
            people = {e.participant_id for e in case.entries}
            copied += [Flag("copied_entry", e.participant_id, e.attempt_id,
                            _copied_detail(sorted(people - {e.participant_id}))) for e in case.entries]
    return [*fast, *sorted(shared, key=lambda f: f.participant_id), *copied]
