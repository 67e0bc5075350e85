"""Ingest throughput and p99 at 64 connections, acks only after the entry is durable, next to the
ceiling of DESIGN §9 (a bare aiohttp app decoding the same bodies), measured in the same run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--connections 64] [--processes 1] [--runs 3] [--event-loop uvloop]

Needs wrk (Debian's package; `make bench` installs it). Loopback only; starts and stops its own
stack (no scorers, so they do not compete for the cores) and baseline app. Each of our runs also says
the slowest AOF fsync Valkey saw in it (its latency monitor): a stall of the disk is a p99 of ours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import msgspec

from eventstore.ids import uuid7
from eventstore.redis_stream.client import open_client, slowest_fsync_ms, watch_fsync_stalls
from ingest.tokens import AttemptClaims, TokenSigner
from ops.embedded import die_with_parent, free_port
from ops.presets import Running, throwaway_stack
from runtime.settings import EVENT_LOOPS, Settings

HERE = Path(__file__).parent
T = TypeVar("T")


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: str

    def line(self, name: str) -> str:
        return (f"{name:<34} {self.requests_per_s:>9,.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms"
                f"   non-2xx {self.non_2xx}{'   ' + self.errors if self.errors else ''}")


def mint_bodies(path: Path, count: int, secret: str, question_ids: list[str], now_ms: int) -> None:
    """`count` submission bodies, each for its own attempt, signed like ingest signs them."""
    signer = TokenSigner(secret.encode())
    answers = {q: "ABCD"[i % 4] for i, q in enumerate(question_ids[:10])}
    encode = msgspec.json.encode
    with path.open("wb") as out:
        for n in range(count):
            claims = AttemptClaims(uuid7(now_ms), f"p{n}", "cbccvc", "VP", 1, now_ms, question_ids[:10])
            out.write(encode({"token": signer.sign(claims), "answers": answers, "prediction": n % 1000}) + b"\n")


def wrk_command(url: str, bodies: Path, seconds: float, connections: int, *, rate: float | None = None,
                threads: int = 2) -> tuple[list[str], dict[str, str]]:
    """wrk posting the pre-minted bodies; with `rate`, paced to about that many requests a second."""
    env = {**os.environ, "BODIES": str(bodies), "THREADS": str(threads), "CONNECTIONS": str(connections)}
    if rate is not None:
        env["RATE"] = str(rate)
    return (["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
             "-s", str(HERE / "submit.lua"), url], env)


def wrk(url: str, bodies: Path, seconds: float, connections: int) -> WrkResult:
    argv, env = wrk_command(url, bodies, seconds, connections)
    return parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout)


def parse_wrk(out: str) -> WrkResult:
    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(float(rps.group(1)) if rps else 0.0, latency("50"), latency("99"),
                     int(non_2xx.group(1)) if non_2xx else 0, errors.group(1) if errors else "")


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1, help="ingest processes sharing the port")
    parser.add_argument("--runs", type=int, default=3, help="alternated runs of ours and the baseline")
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=Settings.event_loop, help="ingest's and the baseline's")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk; `make bench` does it)", file=sys.stderr)
        return 2
    # No scorers: they would compete with ingest for the cores.
    with throwaway_stack("bench-ingest", scorers=0, ingests=args.processes, event_loop=args.event_loop) as run:
        return measure(run, args)


async def on_valkey(url: str, action: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`action(client, *args)` on the stack's Valkey (every master of a cluster: bench.scaleout measures one)."""
    client = await open_client(url)
    try:
        return await action(client, *args)
    finally:
        await client.aclose()


def measure(run: Running, args: argparse.Namespace) -> int:
    """Our ingest, then the bare baseline app, on the same bodies with the same wrk settings, `runs`
    times alternated (a fresh attempt for every request of every run); medians and ranges."""
    contest = run.contest
    port, bare_port = free_port(), free_port()
    baseline, bare = (subprocess.Popen([sys.executable, "-m", "bench.baseline_app", str(p), run.settings.event_loop, kind],
                                       preexec_fn=die_with_parent, cwd=HERE.parent)
                      for p, kind in ((port, "app"), (bare_port, "protocol")))
    ours: list[WrkResult] = []
    ceilings: list[WrkResult] = []
    bares: list[WrkResult] = []
    stalls: list[int] = []
    try:
        wait_port(port)  # both baselines answer once they listen
        wait_port(bare_port)
        for n in range(args.runs):
            bodies = run.workdir / f"bodies-{n}.jsonl"
            count = int(args.seconds * 40_000)  # more than any run sends: every request a new attempt
            mint_bodies(bodies, count, run.settings.secret or "", sorted(contest.questions),
                        contest.periods[0].start_ms + 1000)
            asyncio.run(on_valkey(run.settings.redis_url or "", watch_fsync_stalls, 10))
            ours.append(wrk(run.ingest_url, bodies, args.seconds, args.connections))
            stalls.append(asyncio.run(on_valkey(run.settings.redis_url or "", slowest_fsync_ms)))
            ceilings.append(wrk(f"http://127.0.0.1:{port}", bodies, args.seconds, args.connections))
            bares.append(wrk(f"http://127.0.0.1:{bare_port}", bodies, args.seconds, args.connections))
            bodies.unlink()
    finally:
        for process in (baseline, bare):
            process.terminate()
            process.wait(10)
    ratios = [o.requests_per_s / c.requests_per_s for o, c in zip(ours, ceilings, strict=True)]
    print(f"ingest, {args.processes} process(es), {args.connections} connections, {args.seconds:.0f} s × {args.runs} "
          f"runs, acks only once durable ({run.settings.partitions} partition(s)), {run.settings.event_loop} event "
          "loop on both:")
    for n, (o, c) in enumerate(zip(ours, ceilings, strict=True), 1):
        print(c.line(f"run {n} baseline (decode + 202)"))
        print(o.line(f"run {n} cchc ingest (durable ack)") + f"   slowest Valkey fsync {stalls[n - 1]} ms")
        print(bares[n - 1].line(f"run {n} bare protocol (C parser)"))
    print(f"median ratio {median(ratios):.2f} × the ceiling ({min(ratios):.2f}–{max(ratios):.2f}; target ≥ 0.6); "
          f"cchc ingest median {median(o.requests_per_s for o in ours):,.0f} req/s, "
          f"p99 median {median(o.p99_ms for o in ours):.1f} ms ({min(o.p99_ms for o in ours):.1f}–"
          f"{max(o.p99_ms for o in ours):.1f}; target ≤ 25 ms)")
    bare_ratios = [o.requests_per_s / b.requests_per_s for o, b in zip(ours, bares, strict=True)]
    print(f"for reading it: against a bare protocol on aiohttp's C parser (no web layer, as the submissions' fast "
          f"path) {median(bare_ratios):.2f} × ({min(bare_ratios):.2f}–{max(bare_ratios):.2f})")
    return 0 if all(o.non_2xx == 0 for o in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
