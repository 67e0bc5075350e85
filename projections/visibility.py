"""Guarantee 9 (DESIGN §5): a close or recompute answers only once the results API would serve its
revision on every read path — the primary, a streaming replica (CCHC_DATABASE_READ_URL), and the
answers the API shares between readers for a moment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from eventstore.postgres import Pool, replayed, wal_position
from runtime.errors import NotYet

# How long the results API shares one answer between readers (the published revisions, an open period's
# leaderboard pages, the units and participation): results_api.Results.fresh_s in production. A close
# waits it out, so no answer taken before its commit is served after it answers.
RESULTS_MEMO_S = 1.0


class ReplicaBehind(NotYet):
    """Published, but the read replica has not replayed it yet: results read there would not show it."""

    code = "unavailable"


@dataclass
class ReadPaths:
    """Where the results API reads: the primary (`pool`), maybe a replica, and its shared answers."""

    pool: Pool  # the primary, where results are published
    replica_url: str | None = None  # the results API's CCHC_DATABASE_READ_URL, when it reads a replica
    memo_s: float = RESULTS_MEMO_S
    replica_timeout_s: float = 10.0

    async def serving(self, what: str) -> None:
        """Return once what the primary has committed is what every results reader gets: the replica has
        replayed it (bounded: else ReplicaBehind, 503), then every answer shared before has expired."""
        if self.replica_url:
            lsn = await wal_position(self.pool)
            if not await replayed(self.replica_url, lsn, timeout_s=self.replica_timeout_s):
                raise ReplicaBehind(f"{what} is published, but the read replica has not replayed it within"
                                    f" {self.replica_timeout_s:.0f} s; the results API shows it once it has",
                                    retry_after=5)
        if self.memo_s > 0:
            await asyncio.sleep(self.memo_s)
