"""Individual ranking rules: prediction error, ranking order, counted entry, prizes (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

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


# The ranking order of DESIGN §3, written once: (Entry field, descending?). Every other form of it
# derives from these — the key functions below and the SQL orderings of the projections.
Order = tuple[tuple[str, bool], ...]
PROVISIONAL_ORDER: Order = (("score", True), ("duration_ms", False), ("submitted_ms", False), ("attempt_id", False))
# The final order puts the prediction right after the score; `over` (not_over mode) and
# `prediction_error` are known only at the close, so they are computed, not Entry fields.
PREDICTION_KEYS = ("over", "prediction_error")
FINAL_ORDER: Order = (PROVISIONAL_ORDER[0], *((k, False) for k in PREDICTION_KEYS), *PROVISIONAL_ORDER[1:])
# Which entry of a participant counts (`attempt_selection`) while the period is open.
SELECTION_ORDERS: dict[Selection, Order] = {
    "best": PROVISIONAL_ORDER,
    "first": (("submitted_ms", False), ("attempt_id", False)),
    "last": (("submitted_ms", True), ("attempt_id", True)),
}
ProvisionalKey = tuple[int, int, int, str]
FinalKey = tuple[int, int, int, int, int, str]


def _compile_key(order: Order, computed: tuple[str, ...] = ()) -> Callable[..., tuple[int | str, ...]]:
    """A key function for `order` as fast as a hand-written lambda (it is one, built the way
    dataclasses builds its methods): Entry fields are read from `e`, `computed` ones are arguments;
    descending fields must be numbers (negated)."""
    parts = [f"{'-' if desc else ''}{name if name in computed else f'e.{name}'}" for name, desc in order]
    key: Callable[..., tuple[int | str, ...]] = eval(f"lambda e, {', '.join(('_', *computed))}: ({', '.join(parts)},)")
    return key


_provisional = _compile_key(PROVISIONAL_ORDER)
_final = _compile_key(FINAL_ORDER, PREDICTION_KEYS)


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
    return _provisional(e, None)  # type: ignore[return-value]


def final_key(e: Entry, actual: int, mode: PredictionMode) -> FinalKey:
    """score desc → prediction error asc (not_over: over-predictions last) → duration → time → id."""
    over = 1 if mode == "not_over" and e.prediction > actual else 0
    return _final(e, None, over, prediction_error(e.prediction, actual))  # type: ignore[return-value]


def precedes(a: Entry, b: Entry, order: Order) -> bool:
    """True when `a` comes before `b` in `order` (any field may be descending, strings too)."""
    for name, desc in order:
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            return bool(x > y) if desc else bool(x < y)
    return False


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
    if selection != "best":
        return precedes(a, b, SELECTION_ORDERS[selection])
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
