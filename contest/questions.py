"""Question statistics for the committee: how often each question was drawn and answered right, overall
and among the strongest entries, and which keys look wrong (the cue for an answer-key correction).

Classical item analysis: the "upper group" is the top 27 % of the entries by score. A question that the
upper group mostly answers "wrong", most of them with one and the same other choice, most likely has a
wrong key: strong participants agree on an answer the key does not give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

import msgspec

from contest.model import Contest

UPPER_SHARE = Fraction(27, 100)  # the upper group: the top 27 % of entries by score (Kelley's 27 %)
MIN_UPPER_DRAWS = 10  # fewer strong entries than this saw the question: too few to suspect its key
CHOICES = ("A", "B", "C", "D")


class QuestionStat(msgspec.Struct, frozen=True):
    question_id: str
    group: str | None
    answer: str  # the key as it stands (corrections applied)
    drawn: int  # entries whose attempt drew it
    right: int
    right_rate: float | None  # None when never drawn
    top_drawn: int  # the same among the upper group's entries
    top_right: int
    top_right_rate: float | None
    top_choices: dict[str, int]  # the upper group's answers: A–D and "" (left blank)
    likely_wrong_key: bool
    suggested_answer: str | None  # the one other choice the upper group agrees on


class _Tally:
    __slots__ = ("drawn", "right", "top_choices", "top_drawn", "top_right")

    def __init__(self) -> None:
        self.drawn = self.right = self.top_drawn = self.top_right = 0
        self.top_choices: dict[str, int] = dict.fromkeys((*CHOICES, ""), 0)


def upper_size(entries: int) -> int:
    """How many entries, best first, make the upper group (at least one when there are any)."""
    return max(1, int(entries * UPPER_SHARE)) if entries else 0


class QuestionTally:
    """Entries added one at a time (a period may hold millions), then every question of the bank's stats."""

    def __init__(self, contest: Contest, key: Mapping[str, str]) -> None:
        self.contest = contest
        self.key = key
        self.tallies = {qid: _Tally() for qid in contest.questions}

    def add(self, question_ids: Iterable[str], answers: Mapping[str, str], top: bool) -> None:
        """One entry: the questions its attempt drew, its answers, whether it is in the upper group."""
        for qid in question_ids:
            t = self.tallies.get(qid)
            if t is None:
                continue  # a question no longer in the bank
            given = answers.get(qid, "")
            right = given == self.key.get(qid)
            t.drawn += 1
            t.right += right
            if top:
                t.top_drawn += 1
                t.top_right += right
                t.top_choices[given if given in CHOICES else ""] += 1

    def stats(self) -> list[QuestionStat]:
        return [_stat(self.contest, self.key, qid, t) for qid, t in self.tallies.items()]


def _stat(contest: Contest, key: Mapping[str, str], qid: str, t: _Tally) -> QuestionStat:
    answer = key.get(qid, contest.questions[qid].answer)
    others = sorted(((n, c) for c, n in t.top_choices.items() if c and c != answer), reverse=True)
    count, choice = others[0] if others else (0, "")
    # mostly wrong among the strong, and more than half of them on one other choice
    suspect = (t.top_drawn >= MIN_UPPER_DRAWS and 2 * t.top_right < t.top_drawn and 2 * count > t.top_drawn)
    return QuestionStat(
        qid, contest.questions[qid].group, answer, t.drawn, t.right, t.right / t.drawn if t.drawn else None,
        t.top_drawn, t.top_right, t.top_right / t.top_drawn if t.top_drawn else None, dict(t.top_choices),
        suspect, choice if suspect else None)


class CorrectionImpact(msgspec.Struct, frozen=True):
    """What correcting one question's key would change in one period (DESIGN §6b "Sửa đáp án"): the valid
    entries whose score goes up or down, and the same of disqualified participants, apart."""

    period: int
    gain: int  # answered as the new key says: one more correct answer
    lose: int  # answered as the key says now: one fewer
    disqualified_gain: int
    disqualified_lose: int

    @property
    def changed(self) -> int:
        return self.gain + self.lose


class ImpactTally:
    """Entries that drew the question, added one at a time: who answered the key now, who the new one."""

    def __init__(self, question_id: str, key_now: str, new_answer: str) -> None:
        self.question_id = question_id
        self.key_now = key_now
        self.new_answer = new_answer
        self.counts: dict[tuple[int, bool], list[int]] = {}

    def add(self, period: int, answers: Mapping[str, str], disqualified: bool) -> None:
        given = answers.get(self.question_id)
        if self.key_now == self.new_answer or given not in (self.key_now, self.new_answer):
            return  # its score stays as it is
        tally = self.counts.setdefault((period, disqualified), [0, 0])
        tally[0 if given == self.new_answer else 1] += 1

    def impact(self, periods: Iterable[int]) -> list[CorrectionImpact]:
        def of(period: int, disqualified: bool) -> list[int]:
            return self.counts.get((period, disqualified), [0, 0])

        return [CorrectionImpact(p, *of(p, False), *of(p, True)) for p in periods]
