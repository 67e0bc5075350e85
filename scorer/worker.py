"""One scorer: batch read, archive and project in ONE PostgreSQL transaction, XACK after commit.

Scorers share the streams (the partitions and the contest's) by leases renewed with the heartbeat:
each holds its fair share, and a dead scorer's streams are taken over when its leases run out.

An entry is parked (dead-lettered) only for its own fault (DESIGN §5.8): it cannot be decoded, or
PostgreSQL refuses it while other entries project. How often an entry was delivered says nothing —
every retry during an outage is a delivery — so it is never counted."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import structlog

from eventstore.barrier import entry_tuple
from eventstore.errors import StoreError, StoreRejected, StoreUnavailable
from eventstore.events import AnyEvent, ParticipantRegistered, decode_many
from eventstore.postgres import Pool, archive, archive_state, record_progress, transaction
from eventstore.redis_stream.consumer import Consumer, Entry
from eventstore.redis_stream.leases import Leases
from eventstore.redis_stream.personal import Copies
from projections import personal_queries, results_queries
from projections.apply import Projector
from runtime import metrics
from runtime.clock import Clock
from runtime.inflight import InFlight

log = structlog.get_logger()
Entries = list[Entry]
Decoded = list[tuple[Entry, list[AnyEvent]]]


MAX_HELD = 360  # trims waiting for the archive, at most (an hour of them): a newer one supersedes older ones


@dataclass(frozen=True)
class HeldTrim:
    """A trim waiting for the WAL archive: each stream's acknowledged floor, and the server's WAL position
    read after them — past the commit of every entry below the floors (each ack follows its commit)."""

    timeline: int
    position: int
    floors: dict[int, str]


class Refused(StoreUnavailable):
    """PostgreSQL refused every entry of a batch, each in a transaction of its own: nothing tells an
    entry's own fault from the store's (a broken deploy refuses everything), so nothing is parked and the
    batch is retried, the next time with new entries beside it."""


class Scorer:
    """A worker of the consumer groups; it owns its lifecycle as arq's Worker does: `serve()` runs it
    until SIGTERM/SIGINT, finishes the batch in hand within `stop_grace_s`, beats a heartbeat that
    `cchc scorer --check` reads (and renews its leases with it), and `drain()` is the burst mode
    tests use (every stream, leases or not: archiving twice is a no-op)."""

    def __init__(self, *, consumer: Consumer, leases: Leases, pool: Pool, projector: Projector, clock: Clock,
                 batch_size: int = 2000, block_ms: int = 500, claim_idle_ms: int = 30_000,
                 max_rejections: int = 10, rejection_spacing_ms: int = 30_000, backoff_s: float = 1.0,
                 beat_every_s: float = 5.0, trim_every_s: float = 10.0, stop_grace_s: float = 10.0,
                 in_flight: int = 3, wait_for_archive: bool = True, linger_ms: int = 100) -> None:
        self.consumer = consumer
        self.leases = leases
        self.pool = pool
        self.projector = projector
        self.clock = clock
        self.batch_size = batch_size
        self.block_ms = block_ms
        # After a batch short of `batch_size`, wait this long before the next read, so that entries gather
        # into one transaction instead of a handful each (Kafka's linger.ms): at the design peak's 463 a second
        # that is ~46 entries a batch instead of one or two, and the scorer's and PostgreSQL's CPU per entry
        # falls with it — CPU the hot path shares on two cores. Freshness pays at most this (its p99: 2 s).
        self.linger_ms = linger_ms
        self.claim_idle_ms = claim_idle_ms
        # An entry refused with nothing else to compare it with (alone at the end of its streams) is parked
        # after this many refusals, at most one counted per `rejection_spacing_ms`: ten over five minutes.
        self.max_rejections = max_rejections
        self.rejection_spacing_ms = rejection_spacing_ms
        self.backoff_s = backoff_s  # the pause after a store error before the next try
        self.beat_every_s = beat_every_s
        self.trim_every_s = trim_every_s
        # Trim only below what the WAL archive holds (DESIGN §10); off (CCHC_ARCHIVE_CHECK=off): below what is
        # acknowledged, for a deployment whose permanent record is PostgreSQL's data directory alone.
        self.wait_for_archive = wait_for_archive
        self._held: list[HeldTrim] = []
        self._said_no_archive = False
        self.stop_grace_s = stop_grace_s
        # New batches projected at once, each in its own transaction on its own connection: PostgreSQL
        # works on one while this process reads and prepares the next (measured: BENCHMARKS.md).
        self.in_flight: InFlight[int] = InFlight(in_flight)
        self.name = consumer.name
        self.streams: list[int] = []  # the streams this scorer holds a lease on
        self._behind = True  # own pending entries first: at start, after a failed batch, on a new lease
        self._refused = False  # the last batch was refused whole: retry it with new entries beside it

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then stop reading and let the batch in hand finish; one still
        running `stop_grace_s` later is abandoned (rolled back, redelivered to another scorer)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("scorer_started", consumer=self.name)
        worker = asyncio.create_task(self.run(stop), name=f"scorer {self.name}")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([worker, stopping], return_when=asyncio.FIRST_COMPLETED)
            try:
                await asyncio.wait_for(worker, self.stop_grace_s)
            except TimeoutError:
                log.error("scorer_stop_timeout", consumer=self.name, grace_s=self.stop_grace_s)
        finally:
            stopping.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def process(self, entries: Entries, *, first_delivery: bool = False, alone: bool = False) -> int:
        """Archive + project `entries` in one transaction, then ack; returns events newly projected.
        `first_delivery`: read with XREADGROUP `>` (never archived before: archive COPies them straight).
        `alone`: entries refused before, with no new entry to try beside them (the end of their streams).

        An entry that cannot be decoded, or that PostgreSQL refuses while another entry of the batch
        projects, goes to the dead-letter stream instead of blocking the group. A batch where every
        entry is refused is no proof against any (a bad deploy, a broken database): it raises Refused and
        the entries stay pending for a retry. An outage (StoreUnavailable) raises before anything is
        judged: it never parks anything, however long it lasts."""
        if not entries:
            return 0
        started = time.perf_counter()
        decoded: Decoded = []
        firsts: dict[int, str] = {}  # each stream's first entry: its oldest (a stream is read in order)
        for entry in entries:
            firsts.setdefault(entry[0], entry[1])
            try:
                decoded.append((entry, decode_many(entry[2])))
            except msgspec.DecodeError as e:
                await self._poison(entry, f"cannot decode: {e}")
        try:
            fresh = await self._commit(decoded, first_delivery=first_delivery)
        except StoreRejected:
            fresh = await self._isolate(decoded, alone=alone)
        else:
            # Acked only after commit: a crash here redelivers the batch, and archive() makes that a no-op.
            await self.consumer.ack([entry for entry, _ in decoded])
        self._refused = False
        appended_ms = min(entry_tuple(entry_id)[0] for entry_id in firsts.values())
        metrics.SCORER_FRESHNESS.labels(self.name).observe(max(0, self.clock.now_ms() - appended_ms) / 1000)
        metrics.SCORER_EVENTS.labels(self.name).inc(fresh)
        metrics.SCORER_BATCH_ENTRIES.labels(self.name).observe(len(entries))
        metrics.SCORER_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return fresh

    async def _commit(self, decoded: Decoded, *, first_delivery: bool = False) -> int:
        if not decoded:
            return 0
        if first_delivery:
            try:
                return await self._transaction(decoded, first_delivery=True)
            except StoreRejected:  # archived before after all (a group rewound by hand): the careful way
                pass
        return await self._transaction(decoded, first_delivery=False)

    async def _transaction(self, decoded: Decoded, *, first_delivery: bool) -> int:
        try:
            copies = await self._personal_copies(decoded)  # before the transaction: no connection held meanwhile
            async with transaction(self.pool) as conn:
                fresh = await archive(conn, [(number, entry_id, raw, events)
                                             for (number, entry_id, raw), events in decoded],
                                      first_delivery=first_delivery)
                if copies is not None:
                    await personal_queries.keep_copies(conn, copies.kept)
                    for pid, at_ms in copies.erased.items():  # erased before its registration projects
                        await personal_queries.erase(conn, [pid], at_ms)
                await self.projector.apply(conn, fresh)
                if copies is not None:  # last: after every lock the projection took (results_queries.NAMES_LOCK)
                    await results_queries.erase_names(conn, list(copies.erased))
                number, entry_id, _ = decoded[-1][0]
                await record_progress(conn, self.name, f"{number}:{entry_id}", len(fresh))
        except StoreError:
            raise
        except Exception as e:  # a bug that fails on some events: refused like PostgreSQL's refusals, so
            # isolated and parked when others project (it would otherwise stop the scorer on every try)
            raise StoreRejected(f"{type(e).__name__}: {e}") from e
        return len(fresh)

    async def _personal_copies(self, decoded: Decoded) -> Copies | None:
        """The personal copies of the batch's registrations (events v2): their wrapped data keys and plain
        values reach the keyring from Redis, never through the event record (DESIGN §10); one erased already
        has none and projects as erased."""
        ids = [e.participant_id for _, events in decoded for e in events
               if isinstance(e, ParticipantRegistered) and e.v >= 2]
        return await self.consumer.personal_copies(ids) if ids else None

    async def _isolate(self, decoded: Decoded, *, alone: bool) -> int:
        """One entry per transaction. If any commits, PostgreSQL works: the ones it refused, refused once
        more on their own, are refused for their own fault and parked. If none commits, nothing is proven."""
        fresh, failed = 0, []
        for item in decoded:
            try:
                fresh += await self._commit([item])
            except StoreRejected as e:
                failed.append((item, e))
            else:
                await self.consumer.ack([item[0]])
        if failed and len(failed) == len(decoded):
            self._refused = True
            if alone and await self._count_refusals(failed):
                return fresh
            raise Refused(f"every entry of the batch was refused: {failed[0][1]}")
        for item, _ in failed:  # once more: a refusal of a moment (the server changing state) is no verdict
            try:
                fresh += await self._commit([item])
            except StoreRejected as e:
                await self._poison(item[0], f"cannot project: {e}")
            else:
                await self.consumer.ack([item[0]])
        return fresh

    async def _count_refusals(self, failed: list[tuple[tuple[Entry, list[AnyEvent]], StoreRejected]]) -> bool:
        """Entries refused with nothing else to try beside them: count the refusal; park those refused
        `max_rejections` times. True when every one of them is parked."""
        counts = await self.consumer.reject([entry for (entry, _), _ in failed], self.clock.now_ms(),
                                            self.rejection_spacing_ms)
        parked = 0
        for (entry, _), error in failed:
            times = counts.get(entry[:2], 0)
            log.warning("entry_refused", consumer=self.name, stream=entry[0], entry_id=entry[1], times=times,
                        error=str(error))
            if times >= self.max_rejections:
                await self._poison(entry, f"refused {times} times with nothing else to project: {error}")
                parked += 1
        return parked == len(failed)

    async def _poison(self, entry: Entry, error: str) -> None:
        if not await self.consumer.dead_letter(entry, error):
            return  # no longer pending: parked or projected by another scorer meanwhile
        metrics.SCORER_POISON.labels(self.name).inc()
        log.error("poison_entry", consumer=self.name, stream=entry[0], entry_id=entry[1], error=error)

    async def drain(self) -> int:
        """Burst mode: process everything pending or new in every stream, return when none has more."""
        await self.consumer.ensure_groups()
        every = self.consumer.keys.numbers
        total = 0
        while entries := await self.consumer.own_pending(every, self.batch_size):
            total += await self.process(entries)
        try:
            while entries := await self.consumer.read(every, self.batch_size, None):
                total += await self._launch(entries)
        except BaseException:
            await self.in_flight.abandon()
            raise
        return total + await self._settle()

    async def _launch(self, entries: Entries) -> int:
        """Start projecting new entries beside the batches in flight (at most `in_flight.limit`: it waits
        for the oldest). Returns the events of the batches that finished (nothing new: every one)."""
        if not entries:
            return await self._settle()
        return sum(await self.in_flight.start(self.process(entries, first_delivery=True)))

    async def _settle(self) -> int:
        """Wait for every batch in flight (before reading own pending entries, reclaiming or stopping:
        a batch in flight is pending too); the first failure raises once all have ended."""
        return sum(await self.in_flight.settle())

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: read, process; now and then beat the heartbeat and renew the leases,
        reclaim entries of dead consumers and trim what the groups have acknowledged. Returns between
        batches, giving its leases back (the others take over at once)."""
        await self._step(self.consumer.ensure_groups)
        next_claim = next_beat = next_trim = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                await self._step(self._beat)
                next_beat = now + self.beat_every_s
            if now >= next_claim:
                await self._step(self._reclaim)
                next_claim = now + self.claim_idle_ms / 2000
            if now >= next_trim:
                await self._step(self._trim)
                next_trim = now + self.trim_every_s
            await self._step(self._next_batch)
        await self._step(self._settle, pause=False)
        await self._step(self.leases.release_leases, pause=False)
        await self._step(self.leases.stop_beating, pause=False)
        log.info("scorer_stopped", consumer=self.name)

    async def _beat(self) -> None:
        """Alive now; then hold a fair share of the streams among the scorers alive (leases last three
        beats: a dead scorer's streams are taken over within that)."""
        now_ms, lease_ms = self.clock.now_ms(), int(self.beat_every_s * 3000)
        await self.leases.beat(now_ms, int(self.beat_every_s * 6000))
        alive = sum(1 for ms in (await self.leases.heartbeats()).values() if ms > now_ms - lease_ms)
        held = await self.leases.hold_leases(alive, lease_ms)
        if held != self.streams:
            log.info("scorer_leases", consumer=self.name, streams=held, scorers=alive)
            self._behind = self._behind or bool(set(held) - set(self.streams))
            self.streams = held
        metrics.SCORER_STREAMS.labels(self.name).set(len(held))

    async def _trim(self) -> None:
        """Trim each stream held below what every group acknowledged, once the WAL archive holds the commits
        of those entries: an entry leaves Valkey only when a lost PostgreSQL disk can no longer lose it (DESIGN
        §10). The floors are read first, then the server's WAL position; the trim to those floors waits (this
        time or a later one) until the archive has reached that position on the same timeline."""
        if not self.wait_for_archive:
            for number in self.streams:
                await self.consumer.trim_acknowledged(number)
            return
        floors = {}
        for number in self.streams:
            if (floor := await self.consumer.acknowledged_floor(number)) is not None:
                floors[number] = floor
        state = await archive_state(self.pool)  # after the floors: past the commit of every entry below them
        metrics.WAL_ARCHIVE_BEHIND.labels(self.name).set(state.behind)
        held = [h for h in self._held if h.timeline == state.timeline][-(MAX_HELD - 1):]
        self._held = [*held, HeldTrim(state.timeline, state.position, floors)]
        if state.archived is None:
            if not self._said_no_archive:
                log.warning("stream_trim_waits_for_archive", consumer=self.name,
                            why="no WAL archive known (no archiver slot, synchronous standby or archive_command):"
                                " nothing leaves the stream; CCHC_ARCHIVE_CHECK=off trims without one")
                self._said_no_archive = True
            return
        self._said_no_archive = False
        ready = [h for h in self._held if h.position <= state.archived]
        if not ready:
            return
        trim = ready[-1]
        self._held = [h for h in self._held if h.position > trim.position]
        for number, floor in trim.floors.items():
            if number in self.streams:
                await self.consumer.trim_below(number, floor)

    async def _next_batch(self) -> int:
        """Retry what this consumer holds unacked before taking anything new, so a batch that
        failed (PostgreSQL down) is projected as soon as it can be, in stream order."""
        if self._behind:
            await self._settle()
            entries = await self.consumer.own_pending(self.streams, self.batch_size)
            if not entries:
                self._behind = False
                return 0
            if not self._refused:
                return await self.process(entries)
            # Refused whole last time: new entries beside them tell an entry's own fault (they project, it
            # does not) from the store's (all fail); with nothing new, each refusal only counts.
            more = await self.consumer.read(self.streams, max(1, self.batch_size - len(entries)), None)
            return await self.process(entries + more, alone=not more)
        entries = await self.consumer.read(self.streams, self.batch_size, self.block_ms)
        done = await self._launch(entries)
        if 0 < len(entries) < self.batch_size and self.linger_ms:
            await asyncio.sleep(self.linger_ms / 1000)
        return done

    async def _reclaim(self) -> int:
        """Take over entries idle past the bound (their scorer died or gave the stream up), and project
        them like any other: how often they were delivered says nothing of them."""
        await self._settle()
        return await self.process(await self.consumer.claim_idle(self.streams, self.claim_idle_ms, self.batch_size))

    async def _step(self, action: Callable[[], Awaitable[object]], *, pause: bool = True) -> None:
        """One unit of work; outages are logged and retried after a pause, never fatal."""
        try:
            await action()
        except StoreError as e:
            self._behind = True
            metrics.SCORER_ERRORS.labels(self.name, type(e).__name__).inc()
            log.warning("scorer_backoff", consumer=self.name, error=str(e))
            if pause:
                await asyncio.sleep(self.backoff_s)
