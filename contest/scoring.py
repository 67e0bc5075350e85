"""Scoring one entry against the answer key: an unanswered question is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def count_correct(question_ids: Sequence[str], answers: Mapping[str, str], key: Mapping[str, str]) -> int:
    return sum(1 for q in question_ids if q in answers and answers[q] == key.get(q))


def score(correct: int, points_per_correct: int) -> int:
    return correct * points_per_correct
