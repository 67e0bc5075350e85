"""`make cluster-test`: a contest on a 3-master, 3-replica Valkey Cluster under load; kill -9 of one
master while submissions flow (its replica takes over, the old master comes back as a replica); then
every acknowledged receipt is reconciled against the event table and the projections, and the
rankings against a single-node run of the same entries. Exits 1 on anything lost, doubled or ranked
differently (DESIGN §5.6).

    .venv/bin/python -m loadtests.cluster [--seconds 60] [--clients 24] [--partitions 6]

Loopback only, bounded in time; it starts and stops its own stack in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from rich.table import Table

from contest.model import Contest
from eventstore.barrier import Barrier
from eventstore.events import AnyEvent, ResultsPublished, decode
from eventstore.keys import Keys
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream.client import open_client
from eventstore.redis_stream.writer import StreamWriter
from loadtests.chaos import Ledger, client, console, settle_and_reconcile
from ops.embedded import EmbeddedValkey, EmbeddedValkeyCluster
from ops.presets import Running, throwaway_stack
from ops.simulate import by_stream
from ops.wiring import Clients, build_scorer
from projections.close import publish
from runtime.clock import SystemClock

# The rankings compared: every counted entry, in the leaderboard's order, per period and group.
RANKING = ("SELECT period, group_code, participant_id, attempt_id, score, duration_ms, submitted_ms FROM counted"
           " ORDER BY period, group_code, score DESC, duration_ms, submitted_ms, attempt_id")


async def kill_a_master(cluster: EmbeddedValkeyCluster, keys: Keys, at: float) -> dict[str, float]:
    """At `at` s: kill -9 the master owning partition 0; time its replica's takeover, then start the
    old master again (it rejoins as the new master's replica: acks wait for one, WAITAOF 1 1)."""
    await asyncio.sleep(at)
    probe = await open_client(cluster.url)
    try:
        node = probe.get_node_from_key(keys.slot(0).stream)  # type: ignore[union-attr]  # a cluster client
        assert node is not None
        victim = next(n for n in cluster.nodes if n.port == int(node.port))
    finally:
        await probe.aclose()
    killed = time.monotonic()
    victim.kill()
    console.print(f"[yellow]{time.strftime('%H:%M:%S')} kill -9 master 127.0.0.1:{victim.port}[/]"
                  f" (partition 0's slot)")
    survivors = [n for n in cluster.nodes if n is not victim]
    while not await asyncio.to_thread(_failed_over, cluster, survivors):
        await asyncio.sleep(0.2)
    took_over = time.monotonic() - killed
    console.print(f"replica promoted after {took_over:.1f} s; restarting the old master as a replica")
    await asyncio.to_thread(victim.start)
    await asyncio.to_thread(cluster.wait_ok, 60.0)
    back = time.monotonic() - killed
    console.print(f"cluster whole again (every master with a replica in sync) after {back:.1f} s")
    return {"failover_s": took_over, "whole_again_s": back}


def _failed_over(cluster: EmbeddedValkeyCluster, survivors: list[EmbeddedValkey]) -> bool:
    masters = [n for n in survivors if cluster.role(n) == "master"]
    return len(masters) == cluster.masters and all("cluster_state:ok" in cluster.cli(n, "CLUSTER", "INFO")
                                                   for n in masters)


def results_caught_up(run: Running, within_s: float = 30.0) -> bool:
    """The results API reads a streaming replica: its /readyz tells the staleness, and its leaderboard
    comes to show every counted entry of the primary."""
    with psycopg.connect(run.settings.database_url or "") as conn:
        row = conn.execute("SELECT count(*) FROM counted WHERE period = 1 AND group_code = 'nhan_dan'").fetchone()
    counted = row[0] if row else 0
    deadline = time.monotonic() + within_s
    while True:
        with urllib.request.urlopen(f"{run.results_url}/readyz", timeout=5) as answer:
            staleness = json.load(answer).get("replica_staleness_s")
        with urllib.request.urlopen(f"{run.results_url}/v1/periods/1/leaderboard?group=nhan_dan&limit=1",
                                    timeout=5) as answer:
            total = json.load(answer)["total"]
        if total == counted and staleness is not None:
            console.print(f"results API on the read replica: staleness {staleness} s, {total} counted entries as on"
                          " the primary")
            return True
        if time.monotonic() > deadline:
            console.print(f"[red]the read replica shows {total} of {counted} counted entries (staleness {staleness})[/]")
            return False
        time.sleep(0.5)


def archived_events(database_url: str) -> list[AnyEvent]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT body FROM events ORDER BY stream_ms, stream_seq, part, idx").fetchall()
    return [e for e in (decode(bytes(body)) for (body,) in rows) if not isinstance(e, ResultsPublished)]


Names = list[dict[str, str]]  # per period, the winners' display names as published


async def rankings_and_digest(pool: Any, contest: Contest, keys: Keys, names: Names | None = None
                              ) -> tuple[list[tuple[Any, ...]], list[str], Names]:
    """The counted entries in ranking order, and each period's results digest were it closed now over
    every event (computed in a transaction rolled back: nothing published), with the winners' names.
    Names are personal data, outside the event record (DESIGN §10): a run built from the events alone is
    given the names the cluster published, as a replay is given those its markers recorded."""
    async with pool.connection() as conn:
        ranking = await (await conn.execute(RANKING)).fetchall()
    digests, shown = [], []
    everything = Barrier({n: f"{2**62}-0" for n in keys.numbers}).text()
    for i, period in enumerate(contest.periods):
        async with pool.connection() as conn, conn.transaction(force_rollback=True):
            digest, published = await publish(conn, contest, period, 1, everything,
                                               None if names is None else names[i])
            digests.append(digest)
            shown.append(published)
    return [tuple(r) for r in ranking], digests, shown


async def single_node_run(run: Running, events: list[AnyEvent], workdir: Path, names: Names
                          ) -> tuple[list[tuple[Any, ...]], list[str], Names]:
    """The same events through one Valkey (one partition) and a fresh database, scored by one scorer."""
    database = "single_node"
    with psycopg.connect(run.settings.database_url or "", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
    url = psycopg.conninfo.make_conninfo(run.settings.database_url or "", dbname=database)
    valkey = EmbeddedValkey(workdir / "single-valkey")
    valkey.start()
    pool = open_pool(url, max_size=2)
    await pool.open()
    try:
        await migrate(pool, [p.number for p in run.contest.periods])
        keys = Keys(run.contest.slug, 1)
        redis = await open_client(valkey.url)
        writer = StreamWriter(redis, keys, durability="fsync_always")
        entries = [[e] for e in events]
        for start in range(0, len(entries), 5000):
            await writer.append_to(by_stream(keys, entries[start:start + 5000]))
        scorer = build_scorer(run.contest, Clients(redis, pool, keys), "single", SystemClock())
        await scorer.drain()
        await redis.aclose()
        return await rankings_and_digest(pool, run.contest, keys, names)
    finally:
        await pool.close()
        valkey.stop()


async def cluster_side(run: Running) -> tuple[list[tuple[Any, ...]], list[str], Names]:
    pool = open_pool(run.settings.database_url or "", max_size=2)
    await pool.open()
    try:
        return await rankings_and_digest(pool, run.contest, Keys(run.contest.slug, run.settings.partitions))
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--clients", type=int, default=24, help="concurrent simulated front-ends")
    parser.add_argument("--partitions", type=int, default=6, help="the stream in P partitions")
    parser.add_argument("--kill-at", type=float, default=0.3, help="when the master dies (share of the load)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    ledger = Ledger()
    with throwaway_stack("cluster", scorers=2, ingests=1, slug="cluster", partitions=args.partitions,
                         cluster=3, read_replica=True) as run:
        console.print(run.stack.ready_line())
        cluster = run.stack.valkey
        assert isinstance(cluster, EmbeddedValkeyCluster)
        keys = Keys(run.contest.slug, args.partitions)
        key = {q.id: q.answer for q in run.contest.questions.values()}

        async def load_and_kill() -> dict[str, float]:
            until = time.monotonic() + args.seconds
            killing = asyncio.create_task(kill_a_master(cluster, keys, args.seconds * args.kill_at))
            await asyncio.gather(*(client(n, run.ingest_url, ledger, until, key) for n in range(args.clients)))
            return await killing

        timings = asyncio.run(load_and_kill())
        console.print(f"load done: {ledger.requests} requests, {len(ledger.submissions)} submissions acknowledged;"
                      f" refusals {dict(ledger.refused)}")
        settled = settle_and_reconcile(run, ledger)
        if settled is None:
            return 1
        table, ok = settled
        console.print(table)
        replica_ok = results_caught_up(run)
        ranked, digests, names = asyncio.run(cluster_side(run))
        with tempfile.TemporaryDirectory(prefix="cchc-single-") as tmp:
            single_ranked, single_digests, _ = asyncio.run(
                single_node_run(run, archived_events(run.settings.database_url or ""), Path(tmp), names))
    same = ranked == single_ranked and digests == single_digests and replica_ok
    summary = Table(title="cluster vs single node")
    for col in ("counted entries", "same rankings", "results digests (cluster / single)"):
        summary.add_column(col)
    summary.add_row(str(len(ranked)), "yes" if ranked == single_ranked else "[red]NO[/]",
                    " ".join(f"{a[:12]}/{b[:12]}" for a, b in zip(digests, single_digests, strict=True)))
    console.print(summary)
    console.print(f"failover {timings['failover_s']:.1f} s, whole again {timings['whole_again_s']:.1f} s;"
                  f" total {time.monotonic() - started:.0f} s")
    if not ledger.submissions:
        console.print("[red]no submission was acknowledged: the test proved nothing[/]")
        return 1
    console.print("[green]0 lost, 0 doubled, rankings equal to the single-node run[/]" if ok and same
                  else "[red]LOST, DOUBLED OR RANKED DIFFERENTLY[/]")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
