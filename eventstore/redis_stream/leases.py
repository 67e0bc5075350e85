"""Scorers share the streams by leases renewed with their heartbeat: each holds its fair share among the
scorers alive, and a dead scorer's leases run out so that others take its streams over."""

from __future__ import annotations

import math
from typing import Any

from eventstore.keys import Keys
from eventstore.redis_stream.client import Redis, text, translated
from eventstore.redis_stream.scripts import LEASES


@translated
async def heartbeats(client: Redis, keys: Keys) -> dict[str, int]:
    """consumer → last beat (ms) of every scorer that beat recently."""
    rows: Any = await client.zrange(keys.heartbeats, 0, -1, withscores=True)
    return {text(name): int(score) for name, score in rows}


@translated
async def lease_owners(client: Redis, keys: Keys) -> dict[int, str]:
    """stream number → the scorer that holds its lease now."""
    owners = await client.mget([keys.lease(n) for n in keys.numbers])
    return {n: text(o) for n, o in zip(keys.numbers, owners, strict=True) if o is not None}


class Leases:
    """One scorer's heartbeat and leases."""

    def __init__(self, client: Redis, keys: Keys, consumer: str) -> None:
        self._r = client
        self.keys = keys
        self.consumer = consumer

    @translated
    async def beat(self, now_ms: int, keep_ms: int) -> None:
        """This scorer is alive; beats older than `keep_ms` (scorers long gone) are dropped."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.heartbeats, {self.consumer: now_ms})
            pipe.zremrangebyscore(self.keys.heartbeats, "-inf", f"({now_ms - keep_ms}")
            await pipe.execute()

    async def heartbeats(self) -> dict[str, int]:
        return await heartbeats(self._r, self.keys)

    @translated
    async def stop_beating(self) -> None:
        await self._r.zrem(self.keys.heartbeats, self.consumer)

    async def hold_leases(self, alive: int, ttl_ms: int) -> list[int]:
        """Renew this scorer's leases, take free ones and give back extras, so that each of the `alive`
        scorers holds its fair share of the streams; returns the streams it holds now."""
        return await self._leases(math.ceil(len(self.keys.numbers) / max(1, alive)), ttl_ms)

    async def release_leases(self) -> None:
        """Give back every lease this scorer holds (a graceful stop: others take over at once)."""
        await self._leases(0, 1)

    @translated
    async def _leases(self, fair: int, ttl_ms: int) -> list[int]:
        # EVAL with the source: a short script every few seconds; routed by its keys (the contest's slot).
        held = await self._r.eval(LEASES.source, len(self.keys.numbers),
                                  *[self.keys.lease(n) for n in self.keys.numbers], self.consumer, ttl_ms, fair)
        return [n for n, h in zip(self.keys.numbers, held, strict=True) if int(h)]
