"""Loops that run as tasks until cancelled, and stop even when a driver lost the cancel on its way."""

from __future__ import annotations

import asyncio


def not_cancelled() -> bool:
    """False once the current task was asked to stop: the test of a `while` loop that runs until cancelled. Python
    3.11's asyncio.wait_for (around every redis-py send, and psycopg_pool's waits) hands back the result instead of
    raising when a cancel comes as the call completes (CPython gh-86296): a `while True` loop then never ends."""
    task = asyncio.current_task()
    return task is None or not task.cancelling()
