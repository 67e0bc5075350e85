"""One clock (DESIGN §3): stamps in the reference's time, unmoved by the wall clock, refused when unknown."""

from __future__ import annotations

import asyncio

import pytest

from runtime.clock import ClockOutOfStep, SyncedClock


class Host:
    """A host's two clocks, moved by hand: the wall clock (may be stepped) and the monotonic one."""

    def __init__(self, wall_s: float) -> None:
        self.wall_s, self.mono_s = wall_s, 1000.0

    def pass_s(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def clock(self) -> SyncedClock:
        return SyncedClock(wall=lambda: self.wall_s, monotonic=lambda: self.mono_s)


def read(clock: SyncedClock, host: Host, store_ms: int, rtt_s: float = 0.002) -> None:
    """One reading of the store's time taking `rtt_s` (half before the store answers, half after)."""

    async def ask() -> int:
        host.pass_s(rtt_s / 2)
        answer = store_ms
        host.pass_s(rtt_s / 2)
        return answer

    asyncio.run(clock.measure("", ask))


def test_never_read_is_unknown_and_refused() -> None:
    with pytest.raises(ClockOutOfStep, match="unknown"):
        Host(1_000.0).clock().check()


def test_stamps_are_the_stores_time_whatever_the_wall_clock_says() -> None:
    host = Host(wall_s=1_700_000_000.030)  # 30 ms ahead of the store
    clock = host.clock()
    read(clock, host, store_ms=1_700_000_000_000)
    clock.check()  # 30 ms is within 50
    assert clock.now_ms() == 1_700_000_000_001  # the store's time at the reading's middle, plus 1 ms since
    assert clock.offset_ms() == pytest.approx(30, abs=2)  # the host is ahead
    host.pass_s(10.0)
    host.wall_s -= 3600  # an NTP step back by an hour: the stamps go on in the store's time
    assert clock.now_ms() == 1_700_000_010_001


def test_a_host_more_than_50_ms_off_refuses_and_says_why() -> None:
    host = Host(wall_s=1_700_000_005.000)  # five seconds ahead
    clock = host.clock()
    read(clock, host, store_ms=1_700_000_000_000)
    with pytest.raises(ClockOutOfStep, match="5001 ms ahead of the store's"):
        clock.check()


def test_an_uncertain_reading_is_not_trusted_and_the_best_one_is_kept() -> None:
    host = Host(wall_s=1_700_000_000.000)
    clock = host.clock()
    read(clock, host, store_ms=1_700_000_000_100, rtt_s=0.2)  # in step, but only known within ±100 ms
    with pytest.raises(ClockOutOfStep, match="within 100 ms"):
        clock.check()
    read(clock, host, store_ms=1_700_000_000_201, rtt_s=0.002)
    clock.check()
    read(clock, host, store_ms=1_700_000_000_253, rtt_s=0.1)  # a slow reading later does not replace it
    assert clock.now_ms() == 1_700_000_000_201 + 101  # the good reading plus the time since


def test_a_step_of_the_stores_clock_is_followed_at_the_next_reading() -> None:
    host = Host(wall_s=1_700_000_000.000)  # one machine: the store's clock is the host's
    clock = host.clock()
    read(clock, host, store_ms=1_700_000_000_001)
    host.pass_s(5.0)
    host.wall_s += 0.092  # both step 92 ms forward (a virtual machine resumed from a pause, an NTP step)
    read(clock, host, store_ms=round(host.wall_s * 1000) + 5, rtt_s=0.010)  # a slower reading than the first
    clock.check()  # the first reading no longer tells the store's time: its 92 ms "offset" is not held against us
    assert clock.now_ms() == round(host.wall_s * 1000)
    assert clock.offset_ms() == pytest.approx(0, abs=2)


def test_readings_go_stale() -> None:
    host = Host(wall_s=1_700_000_000.000)
    clock = host.clock()
    read(clock, host, store_ms=1_700_000_000_000)
    host.pass_s(9.0)
    clock.check()
    host.pass_s(2.0)  # no reading for 11 s: the store is away, the offset unknown
    with pytest.raises(ClockOutOfStep, match="unknown"):
        clock.check()


def test_a_cluster_close_checks_every_masters_clock() -> None:
    host = Host(wall_s=1_700_000_000.000)
    clock = host.clock()

    async def reading(name: str, store_ms: int) -> None:
        async def ask() -> int:
            return store_ms
        await clock.measure(name, ask)

    asyncio.run(reading("127.0.0.1:7001", 1_700_000_000_000))
    clock.check()  # "" on a cluster: every master's reference
    asyncio.run(reading("127.0.0.1:7002", 1_700_000_000_500))  # a master whose clock is 500 ms ahead
    clock.check("127.0.0.1:7001")
    with pytest.raises(ClockOutOfStep):
        clock.check()
