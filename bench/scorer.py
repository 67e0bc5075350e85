"""Scorer and replay throughput (events archived + projected per second, one process) next to the
ceiling of DESIGN §9: raw COPY of the same rows into PostgreSQL, measured in the same run.

    .venv/bin/python -m bench.scorer [--participants 20000] [--runs 5]

Loopback only; starts and stops its own embedded Valkey and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import redis.asyncio as aioredis

from contest.load import load_contest
from eventstore.events import encode
from eventstore.keys import EVENT_FIELD, Keys
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream.client import Redis
from ops.embedded import EmbeddedPostgres, EmbeddedValkey
from ops.simulate import by_stream, week
from ops.wiring import Clients, build_scorer
from projections.replay import PROJECTION_TABLES, replay
from runtime.clock import SystemClock
from runtime.settings import REPO_CONTESTS


async def fill_stream(r: Redis, keys: Keys, events: list[list]) -> None:  # type: ignore[type-arg]
    for start in range(0, len(events), 5000):
        for number, entries in by_stream(keys, events[start:start + 5000]).items():
            async with r.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(keys.slot(number).stream, {EVENT_FIELD: entry})
                await pipe.execute()


async def copy_baseline(clients: Clients, events: list[list]) -> float:  # type: ignore[type-arg]
    """Raw COPY of the same rows (one per event, as the event table holds them) into a fresh table."""
    rows = [(i, 0, 0, 0, 0, type(e[0]).__struct_config__.tag, encode(e[0])) for i, e in enumerate(events)]
    async with clients.pool.connection() as conn:
        await conn.execute("CREATE TABLE copy_baseline (LIKE events INCLUDING ALL)")
        await conn.commit()
        started = time.perf_counter()
        async with conn.transaction(), conn.cursor() as cur, cur.copy(
                "COPY copy_baseline (stream_ms, stream_seq, part, idx, period, kind, body) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        return len(rows) / (time.perf_counter() - started)


async def run(participants: int, batch_size: int, runs: int, in_flight: int = 3) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-bench-scorer-"))
    valkey = EmbeddedValkey(workdir / "valkey")
    postgres = EmbeddedPostgres(workdir / "postgres")
    try:
        valkey.start()
        pool = open_pool(postgres.start(), max_size=8)  # as `cchc replay` opens it: the reader and 5 in flight
        await pool.open()
        contest = load_contest(REPO_CONTESTS / "demo", anchor=datetime.now(UTC))
        await migrate(pool, [p.number for p in contest.periods])
        clients = Clients(aioredis.from_url(valkey.url), pool, Keys(contest.slug))
        events = list(week(contest, contest.periods[0], participants, participants * 2))
        scoring, replaying = [], []
        for _ in range(runs):  # each run from an empty stream and empty tables
            await clients.redis.flushall()
            async with pool.connection() as conn:
                await conn.execute(f"TRUNCATE events, consumer_progress, {', '.join(PROJECTION_TABLES)}")
            await fill_stream(clients.redis, Keys(contest.slug), events)
            scorer = build_scorer(contest, clients, "bench", SystemClock())
            scorer.batch_size = batch_size
            scorer.in_flight.limit = in_flight
            started = time.perf_counter()
            projected = await scorer.drain()
            scoring.append(projected / (time.perf_counter() - started))
            report = await replay(contest, pool, batch_size=max(batch_size, 5000))
            replaying.append(report.rate)
            print(f"  run {len(scoring)}: scorer {scoring[-1]:,.0f} events/s, replay {replaying[-1]:,.0f} events/s",
                  flush=True)
        copy_rate = await copy_baseline(clients, events)
        print(f"scorer and replay, one process, {len(events):,} events ({participants:,} participants), "
              f"batches of {batch_size} stream entries, {in_flight} in flight, {runs} runs, median (range):")
        print(f"{'baseline: raw COPY of the same rows':<40} {copy_rate:>10,.0f} rows/s")
        print(f"{'scorer (archive + project, 1 txn/batch)':<40} {median(scoring):>10,.0f} events/s"
              f"   ({min(scoring):,.0f}–{max(scoring):,.0f}; {median(scoring) / copy_rate:.2f} × COPY;"
              " target ≥ 30k events/s)")
        print(f"{'replay (same code path)':<40} {median(replaying):>10,.0f} events/s"
              f"   ({min(replaying):,.0f}–{max(replaying):,.0f}; target ≥ 100k events/s)")
        await clients.close()
    finally:
        postgres.stop()
        valkey.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2000,
                        help="stream entries per scorer batch (the scorer's own default)")
    parser.add_argument("--runs", type=int, default=5, help="scorer and replay runs (median and range)")
    parser.add_argument("--in-flight", type=int, default=3, help="the scorer's batches in flight at once")
    args = parser.parse_args(argv)
    asyncio.run(run(args.participants, args.batch_size, args.runs, args.in_flight))
    return 0


if __name__ == "__main__":
    sys.exit(main())
