"""The monitor's period counts (the dashboard's entries and participants): exact when taken, taken again at most
every minute while the period is open and every ten after it — a count is a pass over the period's entries."""

from __future__ import annotations

import asyncio
import contextlib

from ops.monitor import LIVE_COUNTS_EVERY_S, SETTLED_COUNTS_EVERY_S, Observation
from ops.wiring import build_monitor
from projections.live_queries import PeriodCount
from runtime import metrics
from tests.harness import System, admin


async def test_counts_are_exact_and_taken_again_on_their_cadence(system: System) -> None:
    s = system
    now = [1000.0]
    monitor = build_monitor(s.contest, s.clients, s.clock)
    monitor.monotonic = lambda: now[0]
    first, second = await s.register(), await s.register()
    await s.entry(first, 3)
    await s.entry(first, 4)
    await s.entry(second, 2)
    await s.drain()
    group = s.contest.groups[0].code

    def period_one(seen: Observation) -> tuple[int, int]:
        view = next(p for p in seen.periods if p.number == 1)
        return view.entries.get(group, 0), view.participants.get(group, 0)

    assert period_one(await monitor.refresh()) == (3, 2)
    await s.entry(second, 5)
    await s.drain()
    assert period_one(await monitor.refresh()) == (3, 2)  # within the minute: the count taken before
    now[0] += LIVE_COUNTS_EVERY_S
    assert period_one(await monitor.refresh()) == (4, 2)

    await s.close(1)  # its status changed: counted at once, then every ten minutes
    assert period_one(await monitor.refresh()) == (4, 2)
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": second, "reason": "a copied sheet"},
                                   headers=admin())
    assert status == 202
    await s.drain()
    now[0] += LIVE_COUNTS_EVERY_S
    assert period_one(await monitor.refresh()) == (4, 2)
    now[0] += SETTLED_COUNTS_EVERY_S
    assert period_one(await monitor.refresh()) == (2, 1)


async def test_a_slow_count_does_not_hold_the_streams_gauges(system: System) -> None:
    """The counts yield the CPU (seconds at 1 M, beside a close): the gauges the alerts read — lag, heartbeats,
    memory, the refresh's time — are set before them, so a count still running leaves them current."""
    s = system
    monitor = build_monitor(s.contest, s.clients, s.clock)
    counting = asyncio.Event()

    async def slow_counts(periods: list[int]) -> list[PeriodCount]:
        counting.set()
        await asyncio.sleep(3600)
        return []

    monitor.live.period_counts = slow_counts  # type: ignore[method-assign]
    metrics.MONITOR_REFRESHED.set(0)
    refresh = asyncio.create_task(monitor.refresh())
    await asyncio.wait_for(counting.wait(), 10)
    assert metrics.MONITOR_REFRESHED._value.get() == s.clock.now_ms() / 1000
    refresh.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refresh


async def test_the_monitor_stops_when_a_driver_swallows_its_cancel(system: System) -> None:
    """Python 3.11's asyncio.wait_for (around every redis-py send) can hand back a result instead of the cancel
    that came with it (CPython gh-86296): the monitor's loop stops all the same, so a results process stops."""
    monitor = build_monitor(system.contest, system.clients, system.clock)
    inside = asyncio.Event()

    async def swallowing() -> None:
        inside.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)

    monitor.refresh = swallowing  # type: ignore[assignment,method-assign]  # what refresh returns, run() ignores
    task = monitor.start(0.01)
    await inside.wait()
    await asyncio.wait_for(monitor.stop(task), 2.0)
