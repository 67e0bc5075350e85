"""Individual ranking rules: prediction error, ranking order, counted entry, prizes (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from contest.model import Group, PredictionMode, PredictionTarget, Selection


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One submitted, scored attempt as the rules see it."""

    attempt_id: str
    participant_id: str
    group: str
    unit_code: str | None
    score: int
    correct: int
    questions: int
    duration_ms: int
    prediction: int
    submitted_ms: int

    @property
    def full_score(self) -> bool:
        return self.correct == self.questions


class Ranked(msgspec.Struct, frozen=True, gc=False):
    rank: int
    entry: Entry
    prediction_error: int | None


class Award(msgspec.Struct, frozen=True, gc=False):
    prize: str
    prize_name: str
    ranked: Ranked


ProvisionalKey = tuple[int, int, int, str]
FinalKey = tuple[int, int, int, int, int, str]


def actual_value(entries: Iterable[Entry], target: PredictionTarget) -> int:
    """The number the prediction question asked for, over the period's valid entries."""
    entries = list(entries)
    if target == "entries":
        return len(entries)
    if target == "participants":
        return len({e.participant_id for e in entries})
    return len({e.participant_id for e in entries if e.full_score})


def prediction_error(prediction: int, actual: int) -> int:
    return abs(prediction - actual)


def provisional_key(e: Entry) -> ProvisionalKey:
    """Order while a period is open: the prediction error is not known yet, so it is skipped."""
    return (-e.score, e.duration_ms, e.submitted_ms, e.attempt_id)


def final_key(e: Entry, actual: int, mode: PredictionMode) -> FinalKey:
    """score desc → prediction error asc (not_over: over-predictions last) → duration → time → id."""
    over = 1 if mode == "not_over" and e.prediction > actual else 0
    error = prediction_error(e.prediction, actual)
    return (-e.score, over, error, e.duration_ms, e.submitted_ms, e.attempt_id)


def time_key(e: Entry) -> tuple[int, str]:
    return (e.submitted_ms, e.attempt_id)


def counted_entries(entries: Iterable[Entry], selection: Selection,
                    actual: int | None, mode: PredictionMode) -> list[Entry]:
    """One counted entry per participant: the best by the ranking order, or the first/last sent.

    With `actual` None (period open) "best" uses the provisional order.
    """
    chosen: dict[str, Entry] = {}
    for e in entries:
        held = chosen.get(e.participant_id)
        if held is None or _better(e, held, selection, actual, mode):
            chosen[e.participant_id] = e
    return list(chosen.values())


def _better(a: Entry, b: Entry, selection: Selection, actual: int | None,
            mode: PredictionMode) -> bool:
    if selection == "first":
        return time_key(a) < time_key(b)
    if selection == "last":
        return time_key(a) > time_key(b)
    if actual is None:
        return provisional_key(a) < provisional_key(b)
    return final_key(a, actual, mode) < final_key(b, actual, mode)


def rank(entries: Iterable[Entry], actual: int | None, mode: PredictionMode) -> list[Ranked]:
    """Counted entries of one group in ranking order with their 1-based rank."""
    if actual is None:
        ordered = sorted(entries, key=provisional_key)
        return [Ranked(i, e, None) for i, e in enumerate(ordered, start=1)]
    ordered = sorted(entries, key=lambda e: final_key(e, actual, mode))
    return [Ranked(i, e, prediction_error(e.prediction, actual))
            for i, e in enumerate(ordered, start=1)]


def award_prizes(ranking: Sequence[Ranked], group: Group,
                 skip: frozenset[str] = frozenset()) -> list[Award]:
    """Walk the ranking handing out the group's prizes in order, skipping `skip` participants."""
    slots = [(p.code, p.name) for p in group.prizes for _ in range(p.count)]
    awards: list[Award] = []
    for ranked in ranking:
        if len(awards) == len(slots):
            break
        if ranked.entry.participant_id in skip:
            continue
        code, name = slots[len(awards)]
        awards.append(Award(code, name, ranked))
    return awards
