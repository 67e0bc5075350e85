"""InFlight: at most `limit` tasks at once, none left behind."""

from __future__ import annotations

import asyncio

import pytest

from runtime.inflight import InFlight


async def test_at_most_limit_run_at_once_and_the_oldest_finishes_first() -> None:
    running, most, order = 0, 0, []

    async def work(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (5 - n))
        running -= 1
        order.append(n)
        return n

    flying: InFlight[int] = InFlight(3)
    finished = [n for i in range(5) for n in await flying.start(work(i))]
    finished += await flying.settle()
    assert most == 3 and sorted(finished) == [0, 1, 2, 3, 4] and finished[:3] == [0, 1, 2]
    assert len(flying) == 0


async def test_settle_raises_the_first_failure_once_every_task_has_ended() -> None:
    ended = []

    async def work(n: int) -> int:
        await asyncio.sleep(0.001 * n)
        ended.append(n)
        if n == 0:
            raise ValueError("batch 0 failed")
        return n

    flying: InFlight[int] = InFlight(5)
    for i in range(3):
        await flying.start(work(i))
    with pytest.raises(ValueError, match="batch 0"):
        await flying.settle()
    assert sorted(ended) == [0, 1, 2] and len(flying) == 0


async def test_abandon_waits_for_all_and_drops_their_outcomes() -> None:
    async def fails() -> int:
        raise RuntimeError("x")

    flying: InFlight[int] = InFlight(4)
    await flying.start(fails())
    await flying.start(asyncio.sleep(0.001, result=1))
    await flying.abandon()
    assert len(flying) == 0
