"""`make chaos`: steady load while scorers, Valkey, PostgreSQL and an ingest process are killed with
kill -9 and restarted; then every acknowledged receipt is reconciled against the event table and
the projections. Exits 1 when anything acknowledged was lost or counted twice.

    .venv/bin/python -m loadtests.chaos [--seconds 75] [--clients 24]

Loopback only, bounded in time; it starts and stops its own stack in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psycopg
from rich.console import Console
from rich.table import Table

from eventstore.errors import StoreUnavailable
from eventstore.events import ParticipantRegistered, SubmissionReceived, decode
from eventstore.keys import Keys
from eventstore.redis_stream.client import open_client
from eventstore.redis_stream.inspection import Streams
from ops.embedded import EmbeddedValkey
from ops.presets import Running, throwaway_stack
from ops.simulate import spelled
from ops.stack import Stack
from runtime.settings import Settings

console = Console()


@dataclass
class Ledger:
    """What the clients were told: acknowledged ids, and requests whose outcome is unknown."""

    participants: set[str] = field(default_factory=set)
    submissions: dict[str, str] = field(default_factory=dict)  # attempt_id → submission_id
    unknown_registrations: int = 0
    unknown_submissions: set[str] = field(default_factory=set)  # attempt ids
    refused: Counter[str] = field(default_factory=Counter)
    requests: int = 0


async def client(n: int, base: str, ledger: Ledger, until: float, key: Mapping[str, str]) -> None:
    """One front-end: register once, then start-and-submit attempts until `until` (3 per period)."""
    rng = random.Random(n)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        pid = None
        auth: dict[str, str] = {}
        person = 0
        while time.monotonic() < until:
            if pid is None:
                person += 1
                body: dict[str, Any] = {"full_name": f"Người Thử {spelled(n)} {spelled(person)}",
                                        "id_number": f"{n:04d}{person:08d}", "phone": f"09{n:03d}{person:05d}",
                                        "birth_date": "1990-01-01", "group": "nhan_dan"}
                status, answer = await _post(http, f"{base}/v1/participants", body, ledger)
                if status == 201:
                    pid = answer["participant_id"]
                    auth = {"Authorization": f"Bearer {answer['access_key']}"}
                    ledger.participants.add(pid)
                elif status is None or status >= 500:
                    ledger.unknown_registrations += 1
                    await asyncio.sleep(0.2)
                continue
            status, attempt = await _post(http, f"{base}/v1/attempts", {"participant_id": pid}, ledger, auth)
            if status == 409:  # attempt limit: a new person
                pid = None
                continue
            if status != 201:
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(rng.uniform(0, 0.05))
            answers = {q["id"]: key[q["id"]] if rng.random() < 0.7 else "A" for q in attempt["questions"]}
            submission = {"token": attempt["token"], "answers": answers, "prediction": rng.randint(0, 5000)}
            for _ in range(3):  # a front-end retries an unanswered submission: idempotent per attempt
                status, receipt = await _post(http, f"{base}/v1/submissions", submission, ledger)
                if status in (200, 202):
                    ledger.submissions[attempt["attempt_id"]] = receipt["submission_id"]
                    ledger.unknown_submissions.discard(attempt["attempt_id"])
                    break
                if status is not None and status < 500:
                    break
                ledger.unknown_submissions.add(attempt["attempt_id"])
                await asyncio.sleep(0.3)


async def _post(http: aiohttp.ClientSession, url: str, body: object, ledger: Ledger,
                headers: dict[str, str] | None = None) -> tuple[int | None, dict[str, Any]]:
    ledger.requests += 1
    try:
        async with http.post(url, json=body, headers=headers) as r:
            payload = await r.json(content_type=None)
            if r.status >= 400:
                ledger.refused[f"{r.status} {payload.get('error', {}).get('code', '?')}"] += 1
            return r.status, payload
    except (TimeoutError, aiohttp.ClientError, ValueError):
        ledger.refused["no answer"] += 1
        return None, {}


async def chaos(stack: Stack, seconds: float) -> None:
    """The monkey: scorers every few seconds, then Valkey, PostgreSQL and an ingest process."""
    started = time.monotonic()
    plan = [(0.25, "valkey"), (0.45, "postgres"), (0.65, "ingest-1")]
    next_scorer = 3.0
    while (elapsed := time.monotonic() - started) < seconds:
        if plan and elapsed >= plan[0][0] * seconds:
            _, victim = plan.pop(0)
            await kill_and_restart(stack, victim)
        elif elapsed >= next_scorer:
            await kill_and_restart(stack, random.choice(["scorer-1", "scorer-2"]))
            next_scorer = elapsed + random.uniform(4, 8)
        await asyncio.sleep(0.2)


async def kill_and_restart(stack: Stack, victim: str) -> None:
    at = time.strftime("%H:%M:%S")
    if victim == "valkey":
        assert isinstance(stack.valkey, EmbeddedValkey)
        stack.valkey.kill()
        await asyncio.sleep(2)
        stack.valkey.start()
    elif victim == "postgres":
        assert stack.postgres
        pid = stack.postgres.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(2)
        for _ in range(30):  # orphaned backends must notice the postmaster died first
            try:
                stack.postgres.start()
                break
            except Exception:
                await asyncio.sleep(1)
    else:
        stack.kill(victim)
        await asyncio.sleep(1)
        stack.respawn(victim)
    console.print(f"[yellow]{at} kill -9 {victim}[/] → restarted")


def wait_drained(settings: Settings, slug: str, timeout: float = 180) -> bool:
    """Everything appended to every stream is delivered and acknowledged (scorers caught up)."""
    assert settings.redis_url
    return asyncio.run(_drained(settings.redis_url, Keys(slug, settings.partitions), timeout))


async def _drained(url: str, keys: Keys, timeout: float) -> bool:
    client = await open_client(url)
    streams = Streams(client, keys)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(StoreUnavailable):  # a server restarting: ask again
                progress = await streams.progress()
                if progress.caught_up:
                    return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await client.aclose()


def settle_and_reconcile(run: Running, ledger: Ledger) -> tuple[Table, bool] | None:
    """After the load: restart what exited, wait for the scorers to catch up (None when they do not
    within 180 s), then reconcile every acknowledged id."""
    for name in run.stack.supervise():
        console.print(f"restarted {name}, which had exited")
    if not wait_drained(run.settings, run.contest.slug):
        console.print("[red]the scorers did not catch up within 180 s[/]")
        return None
    return reconcile(run.settings, ledger)


def reconcile(settings: Settings, ledger: Ledger) -> tuple[Table, bool]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        events = [decode(bytes(body)) for (body,) in conn.execute(
            "SELECT body FROM events WHERE kind IN ('participant_registered', 'submission_received')")]
        entries = Counter(a for (a,) in conn.execute("SELECT attempt_id FROM entries"))
        people = {p for (p,) in conn.execute("SELECT participant_id FROM participants")}
    registered = Counter(e.participant_id for e in events if isinstance(e, ParticipantRegistered))
    submitted = Counter(e.attempt_id for e in events if isinstance(e, SubmissionReceived))
    lost_people = len(ledger.participants - set(registered)) + len(ledger.participants - people)
    doubled_people = sum(1 for n in registered.values() if n > 1)
    lost_subs = len(set(ledger.submissions) - set(submitted)) + len(set(ledger.submissions) - set(entries))
    doubled_subs = sum(1 for n in submitted.values() if n > 1) + sum(1 for n in entries.values() if n > 1)
    unknown_landed = len(ledger.unknown_submissions & set(submitted))
    table = Table(title="chaos reconciliation")
    for col in ("kind", "acked", "lost", "doubled", "unknown-outcome (landed / not)"):
        table.add_column(col)
    table.add_row("participants", str(len(ledger.participants)), str(lost_people), str(doubled_people),
                  f"{ledger.unknown_registrations} (n/a)")
    table.add_row("submissions", str(len(ledger.submissions)), str(lost_subs), str(doubled_subs),
                  f"{len(ledger.unknown_submissions)} ({unknown_landed} / "
                  f"{len(ledger.unknown_submissions) - unknown_landed})")
    return table, lost_people == lost_subs == doubled_people == doubled_subs == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="how long the load and the kills last")
    parser.add_argument("--clients", type=int, default=24, help="concurrent simulated front-ends")
    parser.add_argument("--partitions", type=int, default=1, help="the stream in P partitions")
    args = parser.parse_args(argv)
    ledger = Ledger()
    with throwaway_stack("chaos", scorers=2, ingests=2, slug="chaos", partitions=args.partitions) as run:
        console.print(run.stack.ready_line())
        key = {q.id: q.answer for q in run.contest.questions.values()}

        async def load_and_kill() -> None:
            until = time.monotonic() + args.seconds
            await asyncio.gather(chaos(run.stack, args.seconds),
                                 *(client(n, run.ingest_url, ledger, until, key) for n in range(args.clients)))

        started = time.monotonic()
        asyncio.run(load_and_kill())
        console.print(f"load done: {ledger.requests} requests in {time.monotonic() - started:.0f} s; "
                      f"refusals {dict(ledger.refused)}")
        settled = settle_and_reconcile(run, ledger)
        if settled is None:
            return 1
        table, ok = settled
    console.print(table)
    console.print("[green]0 lost, 0 doubled[/]" if ok else "[red]LOST OR DOUBLED ENTRIES[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
