"""The committee's question statistics (contest.questions) over the entries as they stand now."""

from __future__ import annotations

from contest.model import Contest
from contest.questions import QuestionStat, QuestionTally, upper_size
from projections.live_queries import LiveQueries


async def question_report(live: LiveQueries, contest: Contest, period: int | None) -> list[QuestionStat]:
    """Every question of the bank over one period's entries (or every period's), with the key as corrected."""
    tally = QuestionTally(contest, await live.current_key(contest))
    async for question_ids, answers, top in live.answered_questions(period, upper_size):
        tally.add(question_ids, answers, top)
    return tally.stats()
