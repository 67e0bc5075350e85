"""Question statistics: drawn and right counts, the upper group, and the likely-wrong-key rule."""

from __future__ import annotations

from contest.model import Contest
from contest.questions import MIN_UPPER_DRAWS, QuestionTally, upper_size


def key_of(contest: Contest) -> dict[str, str]:
    return {q.id: q.answer for q in contest.questions.values()}


def other(choice: str, step: int = 1) -> str:
    return "ABCD"[("ABCD".index(choice) + step) % 4]


def test_upper_group_is_the_top_27_percent_and_never_empty() -> None:
    assert [upper_size(n) for n in (0, 1, 3, 4, 100, 1000)] == [0, 1, 1, 1, 27, 270]


def test_counts_overall_and_in_the_upper_group(contest: Contest) -> None:
    key = key_of(contest)
    tally = QuestionTally(contest, key)
    tally.add(["Q1", "Q2"], {"Q1": key["Q1"], "Q2": other(key["Q2"])}, True)
    tally.add(["Q1", "Q3"], {"Q3": key["Q3"]}, False)  # Q1 left blank
    stats = {s.question_id: s for s in tally.stats()}
    assert len(stats) == len(contest.questions)  # every question of the bank, drawn or not
    q1 = stats["Q1"]
    assert (q1.drawn, q1.right, q1.right_rate, q1.top_drawn, q1.top_right) == (2, 1, 0.5, 1, 1)
    assert stats["Q2"].top_choices[other(key["Q2"])] == 1 and stats["Q2"].right_rate == 0.0
    assert stats["Q4"].drawn == 0 and stats["Q4"].right_rate is None and not stats["Q4"].likely_wrong_key


def test_strong_entries_agreeing_on_another_choice_flag_the_key(contest: Contest) -> None:
    key = key_of(contest)
    tally = QuestionTally(contest, key)
    n = MIN_UPPER_DRAWS
    agreed, rival = other(key["Q1"]), other(key["Q1"], 2)
    for i in range(n):  # 60 % of the strong pick `agreed`, 20 % the key, 20 % another
        tally.add(["Q1", "Q2"], {"Q1": agreed if i < 0.6 * n else key["Q1"] if i < 0.8 * n else rival,
                                 "Q2": other(key["Q2"]) if i < 0.6 * n else key["Q2"]}, True)
    for _ in range(3 * n):  # the weak mostly follow the key on Q1: the strong are the ones who know
        tally.add(["Q1"], {"Q1": key["Q1"]}, False)
    stats = {s.question_id: s for s in tally.stats()}
    assert stats["Q1"].likely_wrong_key and stats["Q1"].suggested_answer == agreed
    assert stats["Q1"].right_rate is not None and stats["Q1"].right_rate > 0.5  # overall it looks easy
    # Q2 too: 60 % of the strong on one other choice
    assert stats["Q2"].likely_wrong_key


def test_no_flag_when_the_strong_disagree_or_are_too_few(contest: Contest) -> None:
    key = key_of(contest)
    spread = QuestionTally(contest, key)
    for i in range(MIN_UPPER_DRAWS * 2):  # wrong, but split evenly over the three other choices
        spread.add(["Q1"], {"Q1": other(key["Q1"], 1 + i % 3)}, True)
    assert not next(s for s in spread.stats() if s.question_id == "Q1").likely_wrong_key
    few = QuestionTally(contest, key)
    for _ in range(MIN_UPPER_DRAWS - 1):
        few.add(["Q1"], {"Q1": other(key["Q1"])}, True)
    assert not next(s for s in few.stats() if s.question_id == "Q1").likely_wrong_key
