"""Freshness (DESIGN §9): time from a 202 to the entry being visible in the results API, p99, while
ingest runs at 70 % of its capacity measured in the same run (scorers running, as in production).

    .venv/bin/python -m bench.freshness [--seconds 20] [--share 0.7] [--scorers 2]

Needs wrk. Loopback only; starts and stops its own stack.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp

from bench.ingest import mint_bodies, parse_wrk, wrk, wrk_command
from ops.presets import throwaway_stack
from ops.simulate import spelled


async def probe(ingest: str, results: str, seconds: float, every_s: float = 0.1) -> list[float]:
    """Real front-end flows; for each 202, poll the participant view until the entry shows."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = {"full_name": f"Người Đo {spelled(n)}", "id_number": f"0770{n:08d}", "phone": f"097{n:07d}",
                    "birth_date": "1990-01-01", "group": "nhan_dan"}
            async with http.post(f"{ingest}/v1/participants", json=body) as r:
                credentials = await r.json()
            pid = credentials["participant_id"]
            async with http.post(f"{ingest}/v1/attempts", json={"participant_id": pid},
                                 headers={"Authorization": f"Bearer {credentials['access_key']}"}) as r:
                attempt = await r.json()
            submission = {"token": attempt["token"], "answers": {}, "prediction": 1}
            async with http.post(f"{ingest}/v1/submissions", json=submission) as r:
                assert r.status == 202, await r.text()
                acked = time.perf_counter()
            while True:
                async with http.get(f"{results}/v1/periods/1/participants/{pid}") as r:
                    view = await r.json() if r.status == 200 else {}
                if any(a["attempt_id"] == attempt["attempt_id"] for a in view.get("attempts", [])):
                    latencies.append(time.perf_counter() - acked)
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(every_s)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--share", type=float, default=0.7, help="of the measured capacity")
    parser.add_argument("--scorers", type=int, default=2)
    args = parser.parse_args(argv)
    with throwaway_stack("bench-freshness", scorers=args.scorers) as run:
        contest = run.contest
        bodies = run.workdir / "bodies.jsonl"
        mint_bodies(bodies, int((args.seconds + 10) * 25_000), run.settings.secret or "", sorted(contest.questions),
                    contest.periods[0].start_ms + 1000)
        capacity = wrk(run.ingest_url, bodies, 8, 64).requests_per_s
        rate = capacity * args.share
        argv, env = wrk_command(run.ingest_url, bodies, args.seconds + 2, 64, rate=rate)
        paced = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(1)
        latencies = asyncio.run(probe(run.ingest_url, run.results_url, args.seconds))
        load = parse_wrk(paced.communicate(timeout=120)[0])
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    print(f"freshness, 202 → visible in the results API, {len(latencies)} probes, {args.scorers} scorers:")
    print(f"capacity measured in this run (64 connections, scorers running): {capacity:,.0f} req/s")
    print(f"offered {rate:,.0f} req/s ({args.share:.0%}), achieved {load.requests_per_s:,.0f} req/s, "
          f"ingest p99 {load.p99_ms:.1f} ms")
    print(f"freshness p50 {statistics.median(latencies) * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   "
          f"max {max(latencies) * 1000:.0f} ms   (target p99 ≤ 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
