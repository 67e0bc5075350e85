"""Erasing personal data for the committee and by retention (DESIGN §10), beside the participant's own request
(ingest): the data keys destroyed in Redis with the event that records the erasure (eventstore/lua/erase.lua),
the keyring and the projection overwritten at once, the erasure log beside the backups written, Valkey's AOF
rewritten; the identity claims of erased participants released once the contest's last period is closed; and
`cchc forget --expired`, the retention erasure of everyone `retention_days` after the last close."""

from __future__ import annotations

import msgspec
import structlog

from contest.model import Contest
from eventstore.erasure_log import ErasureLog
from eventstore.events import ParticipantErased, encode_many
from eventstore.postgres import Pool, transaction
from eventstore.redis_stream import personal
from eventstore.redis_stream.personal import AofRewriter
from eventstore.redis_stream.scripts import ErasureRefused, KeyReused
from eventstore.redis_stream.writer import StreamWriter, WriteId
from projections import personal_queries, results_queries
from projections.personal_queries import PersonalQueries
from runtime import metrics
from runtime.clock import Clock
from runtime.errors import NotFound

log = structlog.get_logger()
DAY_MS = 86_400_000
CHUNK = 1000  # participants per retention erasure event (and per script call): one partition's
DEFAULT_RETENTION_DAYS = 90  # a contest without [privacy] (a test contest) keeps personal data this long


class UnknownParticipant(NotFound):
    """No participant with this id."""

    code = "unknown_participant"


class Forgotten(msgspec.Struct):
    """What `cchc forget --expired` did: `closed_ms` None while a period is still to close (nothing done)."""

    closed_ms: int | None = None  # when the last period was closed
    due_ms: int | None = None  # when the retention erasure is due (closed + retention_days)
    erased: int = 0  # participants erased now by retention
    released: int = 0  # identity claims of erased participants released now


class Erasures:
    """The committee's erasures and the retention erasure. `log`: the erasure log beside the backups (None:
    none kept, e.g. a scratch copy); `aof`: who rewrites Valkey's AOF after an erasure (one per process)."""

    def __init__(self, contest: Contest, writer: StreamWriter, pool: Pool, clock: Clock, *,
                 log: ErasureLog | None = None, aof: AofRewriter | None = None) -> None:
        self.contest = contest
        self.writer = writer
        self.pool = pool
        self.clock = clock
        self.log = log
        self.aof = aof or AofRewriter(writer.client)

    @property
    def retention_days(self) -> int:
        return self.contest.privacy.retention_days if self.contest.privacy else DEFAULT_RETENTION_DAYS

    async def erase(self, participant_id: str, reason: str, *, by: str) -> int:
        """Erase one participant's personal data at the committee's hands (a request received by other
        means); returns when it was erased (ms): the first time, if it was before."""
        at_ms = self.clock.now_ms()
        event = encode_many([ParticipantErased(participant_ids=[participant_id], at_ms=at_ms, by=by, reason=reason)])
        outcome = await self.writer.erase(WriteId.fresh(), [participant_id], event, at_ms)
        if isinstance(outcome, ErasureRefused | KeyReused):
            raise UnknownParticipant("no participant with this id")
        metrics.ERASURES.labels("committee" if outcome.newly else "repeated").inc()
        await self._erased([participant_id], outcome.at_ms, by)
        return outcome.at_ms

    async def _erased(self, participant_ids: list[str], at_ms: int, by: str) -> None:
        """PostgreSQL at once (the scorer will project the event too: the same idempotent statements), the
        erasure log, and the AOF rewrite; also after a repeat, whose first run's reply may have been lost
        before these steps (each is harmless twice)."""
        async with transaction(self.pool) as conn:
            await personal_queries.erase(conn, participant_ids, at_ms)
            await results_queries.erase_names(conn, participant_ids)
        if self.log is not None:
            await self.log.record(participant_ids, at_ms, by)
        self.aof.request()

    async def forget_expired(self, *, by: str) -> Forgotten:
        """Once every period is closed: the identity claims of erased participants go (DESIGN §10 keeps them
        until then: no fresh attempts under the same CCCD or phone). Once `retention_days` have passed since
        the last close: every participant's personal data is erased (their results stay), then their claims
        go too. Run again, it does what is left (`cchc up` runs it every hour). Days are counted in the
        database's clock, which also stamped the close."""
        closed_ms, now_ms = await PersonalQueries(self.pool).closed(len(self.contest.periods))
        if closed_ms is None:
            return Forgotten()
        done = Forgotten(closed_ms, closed_ms + self.retention_days * DAY_MS)
        if now_ms >= (done.due_ms or 0):
            done.erased = await self._erase_everyone(by)
        done.released = await personal.release_identities(self.writer.client, self.writer.keys)
        if done.erased or done.released:
            self.aof.request()
        log.info("forget_expired", closed_ms=done.closed_ms, due_ms=done.due_ms, erased=done.erased,
                 released=done.released)
        return done

    async def _erase_everyone(self, by: str) -> int:
        """Every participant not erased yet — those Redis knows and those only PostgreSQL knows — in chunks of
        one partition, each chunk one event."""
        keys, client = self.writer.keys, self.writer.client
        by_partition: dict[int, set[str]] = {}
        for number in range(keys.partitions):
            by_partition[number] = set(await personal.not_erased(client, keys, number))
        only_here = await PersonalQueries(self.pool).not_erased()
        already = await personal.erased_among(client, keys, only_here)
        for pid in only_here:
            if pid not in already:
                by_partition.setdefault(keys.partition_of(pid), set()).add(pid)
        erased = 0
        for ids in by_partition.values():
            ordered = sorted(ids)
            for start in range(0, len(ordered), CHUNK):
                chunk = ordered[start:start + CHUNK]
                at_ms = self.clock.now_ms()
                event = encode_many([ParticipantErased(participant_ids=chunk, at_ms=at_ms, by=by,
                                                       reason=f"retention: {self.retention_days} days after the"
                                                              " contest's last close")])
                outcome = await self.writer.erase(WriteId.fresh(), chunk, event, at_ms, strict=False)
                if isinstance(outcome, ErasureRefused | KeyReused):  # not with strict=False and a fresh id
                    continue
                erased += outcome.newly
                metrics.ERASURES.labels("retention").inc(outcome.newly)
                await self._erased(chunk, at_ms, by)
        return erased
