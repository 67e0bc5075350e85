"""Flags for the committee: too fast, shared addresses, copied entries (never a disqualification)."""

from __future__ import annotations

from contest.flags import Submitted, copied_entries, review, shared_addresses, too_fast


def entry(attempt: str, person: str, seconds: float = 300, answers: dict[str, str] | None = None,
          prediction: int = 7) -> Submitted:
    return Submitted(attempt, person, int(seconds * 1000), answers if answers is not None else {"Q1": "A"},
                     prediction)


def test_too_fast_only_below_the_plausible_time_and_only_when_asked() -> None:
    entries = [entry("a1", "p1", 9.9), entry("a2", "p2", 10), entry("a3", "p3", 600)]
    assert [f.attempt_id for f in too_fast(entries, 10)] == ["a1"]
    assert too_fast(entries, 0) == []


def test_shared_addresses_from_the_threshold_on() -> None:
    assert [f.participant_id for f in shared_addresses({"p1": 5, "p2": 4, "p3": 12})] == ["p1", "p3"]


def test_copied_entries_are_the_same_answers_and_prediction_of_different_people() -> None:
    same = {"Q1": "A", "Q2": "C"}
    entries = [entry("a1", "p1", answers=same), entry("a2", "p2", answers={"Q2": "C", "Q1": "A"}),
               entry("a3", "p3", answers=same, prediction=8),  # another prediction: not a copy
               entry("a4", "p1", answers=same),  # the same person twice: no one else's
               entry("a5", "p4", answers={}), entry("a6", "p5", answers={})]  # empty sheets copy nothing
    flagged = {(f.participant_id, f.attempt_id) for f in copied_entries(entries)}
    assert flagged == {("p1", "a1"), ("p2", "a2"), ("p1", "a4")}


def test_review_lists_every_kind() -> None:
    flags = review([entry("a1", "p1", 2), entry("a2", "p2", answers={"Q9": "B"}), entry("a3", "p3", answers={"Q9": "B"})],
                   {"p1": 6}, 5)
    assert [f.kind for f in flags] == ["too_fast", "shared_address", "copied_entry", "copied_entry"]
