"""The monitor's period counts (the dashboard's entries and participants): exact when taken, taken again at most
every minute while the period is open and every ten after it — a count is a pass over the period's entries."""

from __future__ import annotations

from ops.monitor import LIVE_COUNTS_EVERY_S, SETTLED_COUNTS_EVERY_S, Observation
from ops.wiring import build_monitor
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
