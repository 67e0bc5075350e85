"""A bounded number of tasks at once, finished in the order they started (the scorer's and replay's batches)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class InFlight(Generic[T]):
    """Up to `limit` tasks run at once; starting one more waits for the oldest first. No task is left
    behind: `settle` waits for all (the first failure raises once every one has ended), `abandon`
    waits for all and drops their outcomes (a caller already failing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: deque[asyncio.Task[T]] = deque()

    def __len__(self) -> int:
        return len(self._tasks)

    async def start(self, work: Coroutine[Any, Any, T]) -> list[T]:
        """Start `work`; while `limit` tasks are running, wait for the oldest. Returns what finished."""
        self._tasks.append(asyncio.create_task(work))
        finished = []
        while len(self._tasks) >= self.limit:
            finished.append(await self._tasks.popleft())
        return finished

    async def settle(self) -> list[T]:
        results = await self._gather()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]  # no exceptions left in it

    async def abandon(self) -> None:
        await self._gather()

    async def _gather(self) -> list[T | BaseException]:
        tasks, self._tasks = list(self._tasks), deque()
        return await asyncio.gather(*tasks, return_exceptions=True)
