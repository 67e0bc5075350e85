"""`make ops-check`: a real Prometheus scrapes a local stack under light load with our alert rules;
the scorer is stopped and the freshness alert must fire, then resolve once the scorer is back.

    .venv/bin/python -m ops.opscheck --prometheus .tools/prom/usr/bin/prometheus

Loopback only; bounded in time (each wait has a deadline); stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from rich.console import Console

from ops.embedded import die_with_parent, free_port
from ops.presets import Running, throwaway_stack
from ops.simulate import spelled
from ops.stack import Stack

OPS = Path(__file__).parent
ALERT = "CchcOldestEntryTooOld"
console = Console()


def fast_rules(target: Path) -> Path:
    """ops/alerts.yml with every `for:` shortened, so the check takes seconds, not minutes."""
    target.write_text(re.sub(r"for: \S+", "for: 3s", (OPS / "alerts.yml").read_text()))
    return target


def prometheus_config(folder: Path, targets: Path, rules: Path) -> Path:
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "cchc", "file_sd_configs": [{"files": [str(targets)],
                                                                      "refresh_interval": "1s"}]}],
    }))
    return config


def firing(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as answer:
        alerts = json.load(answer)["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                took = time.monotonic() - started
                console.print(f"  [green]✓[/] {what} ({took:.0f} s)")
                return took
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


async def light_load(base: str, key: Mapping[str, str], stop: asyncio.Event) -> int:
    """A few front-ends: register, start, submit — about 20 requests a second."""
    sent = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"full_name": f"Người Thử {spelled(n)}", "id_number": f"0990{n:08d}", "phone": f"098{n:07d}",
                    "birth_date": "1990-01-01", "group": "nhan_dan"}
            try:
                async with http.post(f"{base}/v1/participants", json=body) as r:
                    credentials = await r.json()
                async with http.post(f"{base}/v1/attempts", json={"participant_id": credentials["participant_id"]},
                                     headers={"Authorization": f"Bearer {credentials['access_key']}"}) as r:
                    attempt = await r.json()
                answers = {q["id"]: key[q["id"]] for q in attempt["questions"]}
                async with http.post(f"{base}/v1/submissions",
                                     json={"token": attempt["token"], "answers": answers, "prediction": 1}) as r:
                    sent += r.status == 202
            except (TimeoutError, aiohttp.ClientError, KeyError):
                pass
            await asyncio.sleep(0.15)
    return sent


def scenario(stack: Stack, prom_url: str) -> None:
    console.print("healthy stack under load:")
    wait_for("Prometheus scrapes every process", lambda: _targets_up(prom_url, len(stack.metrics_ports)), 60)
    wait_for("the freshness gauge is exported", lambda: _query(prom_url, "cchc_stream_oldest_unprocessed_age_seconds"),
             60)
    if ALERT in firing(prom_url):
        raise AssertionError(f"{ALERT} fires while the scorers keep up")
    console.print("scorers stopped (kill -9):")
    for name in [n for n in stack.children if n.startswith("scorer")]:
        stack.kill(name)
    wait_for(f"{ALERT} fires", lambda: ALERT in firing(prom_url), 120)
    console.print(f"  also firing: {sorted(firing(prom_url) - {ALERT})}")
    console.print("scorers back:")
    for name in [n for n in stack.commands if n.startswith("scorer")]:
        stack.respawn(name)
    wait_for(f"{ALERT} resolves", lambda: ALERT not in firing(prom_url), 120)


def _targets_up(url: str, expected: int) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as answer:
        active = json.load(answer)["data"]["activeTargets"]
    return len(active) == expected and all(t["health"] == "up" for t in active)


def _query(url: str, expr: str) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={expr}", timeout=5) as answer:
        return bool(json.load(answer)["data"]["result"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="the prometheus binary")
    args = parser.parse_args(argv)
    with throwaway_stack("opscheck", scorers=1, monitor_interval_s=1.0) as run:
        prom_log = run.workdir / "prometheus.log"
        prom = start_prometheus(args.prometheus, run, prom_log)
        try:
            sent = check(run, prom.url)
        except (TimeoutError, AssertionError) as e:
            tail = "".join(prom_log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            console.print(f"[red]ops-check failed[/]: {e}\nthe end of Prometheus's log:\n{tail}")
            return 1
        finally:
            prom.proc.terminate()
            prom.proc.wait(10)
    console.print(f"[green]ops-check passed[/]: {sent} submissions accepted during the check")
    return 0


@dataclass
class Prometheus:
    proc: subprocess.Popen[bytes]
    url: str


def start_prometheus(binary: str, run: Running, log_path: Path) -> Prometheus:
    """A real Prometheus scraping the stack's targets every second with the fast rules."""
    port = free_port()
    config = prometheus_config(run.workdir, run.stack.targets_path, fast_rules(run.workdir / "alerts.yml"))
    with log_path.open("wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                 f"--storage.tsdb.path={run.workdir / 'tsdb'}"], stdout=log, stderr=log,
                                preexec_fn=die_with_parent)
    prom = Prometheus(proc, f"http://127.0.0.1:{port}")
    wait_for("Prometheus ready", lambda: urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2).status == 200, 60)
    return prom


def check(run: Running, prom_url: str) -> int:
    """The scenario under light load; returns the submissions accepted meanwhile."""
    key = {q.id: q.answer for q in run.contest.questions.values()}

    async def under_load() -> int:
        stop = asyncio.Event()
        load = asyncio.create_task(light_load(run.ingest_url, key, stop))
        try:
            await asyncio.to_thread(scenario, run.stack, prom_url)
        finally:
            stop.set()
        return await load

    return asyncio.run(under_load())


if __name__ == "__main__":
    sys.exit(main())
