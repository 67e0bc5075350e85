"""What one request of each kind costs each process of the stack: CPU per request from /proc, each kind alone at a
fixed rate against a throwaway stack (ingest's views, the current attempt, a start, a submission; the results
app's health, a standing, a leaderboard page). Where a process's CPU goes when the load test's p99 climbs.

    .venv/bin/python -m bench.route_costs [--rate 1000] [--seconds 8] [--only "current"]

Prints one line per kind: the rate achieved, the answers not expected, and µs of CPU per request per process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.registration import cpu_seconds
from loadtests.run import register
from ops.presets import Running, throwaway_stack

Make = Callable[[int], tuple[str, str, dict[str, Any], tuple[int, ...]]]  # i → method, url, request kwargs, ok
KINDS = ("ingest", "results", "scorer", "valkey", "postgres")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far by the stack's processes, by kind (PostgreSQL's backends come and go: every
    process is looked at)."""
    out: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            kind = next((k for k in KINDS[:3] if f" {k} " in command and "ops.cli" in command), None)
            kind = kind or ("valkey" if "valkey-server" in command else "postgres" if "postgres" in command else None)
            if kind:
                out[kind] = out.get(kind, 0.0) + cpu_seconds(int(pid))
        except OSError:  # gone meanwhile
            continue
    return out


async def fire(make: Make, rate: float, seconds: float) -> tuple[int, dict[int, int]]:
    """`make(i)`'s requests at `rate` a second for `seconds`, each as it comes (an open model)."""
    done, unexpected = 0, dict[int, int]()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal done
            method, url, kwargs, ok = make(i)
            async with http.request(method, url, **kwargs) as answer:
                await answer.read()
                done += 1
                if answer.status not in ok:
                    unexpected[answer.status] = unexpected.get(answer.status, 0) + 1

        start, i = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return done, unexpected


def kinds(run: Running, people: list[dict[str, str]], attempts: list[dict[str, Any]], etag: str) -> dict[str, Make]:
    ingest, results = run.ingest_url, run.results_url

    half = len(people) // 2  # the first half hold an open attempt each (for the submissions), the others none

    def person(i: int) -> dict[str, str]:
        return people[i % len(people)]

    def auth(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {person(i)['access_key']}"}

    def idle(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {people[half + i % (len(people) - half)]['access_key']}"}

    def key() -> str:
        return base64.urlsafe_b64encode(os.urandom(18)).decode()

    def submission(i: int) -> dict[str, Any]:
        attempt = attempts[i % len(attempts)]
        return {"token": attempt["token"], "answers": {q["id"]: "A" for q in attempt["questions"]}, "prediction": 7}

    return {
        "ingest: GET /thi revalidated (304)": lambda i: ("GET", f"{ingest}/thi", {"headers": {"If-None-Match": etag}},
                                                         (304,)),
        "ingest: GET /v1/attempts/current (404)": lambda i: ("GET", f"{ingest}/v1/attempts/current",
                                                             {"headers": idle(i)}, (404,)),
        "ingest: POST /v1/attempts": lambda i: ("POST", f"{ingest}/v1/attempts", {
            "json": {"participant_id": person(i)["participant_id"]}, "headers": {**auth(i), "Idempotency-Key": key()}},
            (201,)),
        "ingest: POST /v1/submissions": lambda i: ("POST", f"{ingest}/v1/submissions", {"json": submission(i)},
                                                   (202,)),
        "results: GET /healthz": lambda i: ("GET", f"{results}/healthz", {}, (200,)),
        "results: a standing": lambda i: ("GET", f"{results}/v1/periods/1/participants/{person(i)['participant_id']}",
                                          {}, (200,)),
        "results: a leaderboard page": lambda i: ("GET", f"{results}/v1/periods/1/leaderboard?limit=50", {}, (200,)),
    }


async def prepare(run: Running, count: int) -> tuple[list[dict[str, str]], list[dict[str, Any]], str]:
    """2 × `count` participants, an open attempt for each of the first `count` (for the submissions), and the
    quiz page's ETag."""
    privacy = run.contest.privacy
    people = await register(run.ingest_url, 2 * count, next(iter(run.contest.units)),
                            {"version": privacy.version} if privacy else None)
    attempts: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http:
        turns = asyncio.Semaphore(32)

        async def start(p: dict[str, str]) -> None:
            async with turns, http.post(f"{run.ingest_url}/v1/attempts", json={"participant_id": p["participant_id"]},
                                        headers={"Authorization": f"Bearer {p['access_key']}"}) as answer:
                if answer.status != 201:
                    raise SystemExit(f"starting an attempt for the submissions: {answer.status} {await answer.text()}")
                attempts.append(await answer.json())

        await asyncio.gather(*(start(p) for p in people[:len(people) // 2]))
        async with http.get(f"{run.ingest_url}/thi") as answer:
            etag = answer.headers["ETag"]
    return people, attempts, etag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="requests a second of each kind")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each kind is offered")
    parser.add_argument("--only", default="", help="only the kinds whose name holds this")
    args = parser.parse_args(argv)
    with throwaway_stack("route-costs", scorers=1, attempts_per_period=1000, privacy=True) as run:
        # one open attempt per submission to come: a submission is accepted once per attempt
        people, attempts, etag = asyncio.run(prepare(run, int(args.rate * args.seconds) + 100))
        time.sleep(3)  # the registrations and starts projected: the scorer idle again
        print(f"each kind alone, {args.rate:,.0f}/s offered for {args.seconds:g} s; CPU µs a request:", flush=True)
        for name, make in kinds(run, people, attempts, etag).items():
            if args.only not in name:
                continue
            before, started = cpu_by_kind(), time.monotonic()
            done, unexpected = asyncio.run(fire(make, args.rate, args.seconds))
            after, took = cpu_by_kind(), time.monotonic() - started
            costs = "  ".join(f"{k} {(after.get(k, 0) - before.get(k, 0)) / max(done, 1) * 1e6:.0f}"
                              for k in KINDS)
            print(f"{name}: {done / took:,.0f}/s, unexpected {unexpected or 'none'} | {costs}", flush=True)
            time.sleep(2)


if __name__ == "__main__":
    main()
