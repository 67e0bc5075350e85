"""Scoring one entry against the answer key: an unanswered question is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_MISSING = object()  # an unanswered question matches no key, not even a missing one


def count_correct(question_ids: Sequence[str], answers: Mapping[str, str], key: Mapping[str, str]) -> int:
    return sum([answers.get(q, _MISSING) == key.get(q) for q in question_ids])


def score(correct: int, points_per_correct: int) -> int:
    return correct * points_per_correct
