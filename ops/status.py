"""`cchc status`: one screen for the duty engineer — health, periods, stream, lag, scorers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime

from rich.console import Console
from rich.table import Table

from contest.model import Contest
from eventstore.errors import StoreUnavailable
from ops.monitor import Observation
from ops.wiring import Clients

FRESHNESS_WARN_S = 30.0


def http_ready(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            return "ready" if answer.status == 200 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as e:
        try:
            return f"HTTP {e.code}: {json.loads(e.read())['error']['message']}"
        except (ValueError, KeyError):
            return f"HTTP {e.code}"
    except OSError as e:
        return f"unreachable ({e})"


async def health(clients: Clients, urls: dict[str, str]) -> dict[str, str]:
    out = {}
    try:
        await clients.redis_ready()
        out["redis"] = "ready"
    except StoreUnavailable as e:
        out["redis"] = f"DOWN: {e}"
    try:
        await clients.ready()
        out["postgres"] = "ready"
    except StoreUnavailable as e:
        out["postgres"] = f"DOWN: {e}" if out["redis"] == "ready" else "unknown (redis down)"
    for name, url in urls.items():
        out[f"{name} {url}"] = http_ready(url)
    return out


def render(console: Console, contest: Contest, seen: Observation | None, checks: dict[str, str]) -> bool:
    """Print the summary; True when everything looks healthy."""
    healthy = all(v == "ready" for v in checks.values())
    table = Table(title=f"{contest.title} ({contest.slug}) — {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}",
                  title_justify="left")
    table.add_column("component")
    table.add_column("state")
    for name, state in checks.items():
        table.add_row(name, state if state == "ready" else f"[red]{state}[/]")
    console.print(table)
    if seen is None:
        return False
    periods = Table(title="periods", title_justify="left")
    for col in ("#", "name", "status", "ends", *(f"{g.code} entries / people" for g in contest.groups)):
        periods.add_column(col)
    for p in seen.periods:
        ends = datetime.fromtimestamp(p.end_ms / 1000, contest.tz).strftime("%d/%m %H:%M")
        overdue = p.status == "closing" and seen.now_ms - p.end_ms > 30 * 60 * 1000
        status = f"[red]{p.status} (not closed!)[/]" if overdue else p.status
        periods.add_row(str(p.number), p.name, status, ends,
                        *(f"{p.entries.get(g.code, 0)} / {p.participants.get(g.code, 0)}" for g in contest.groups))
    console.print(periods)
    stream = Table(title="stream and scorers", title_justify="left")
    stream.add_column("what")
    stream.add_column("value")
    dead = 0
    for g in seen.streams:
        stale = g.oldest_unprocessed_s > FRESHNESS_WARN_S
        healthy = healthy and not stale
        dead += g.dead_letters
        age = f"[red]{g.oldest_unprocessed_s:.1f} s[/]" if stale else f"{g.oldest_unprocessed_s:.1f} s"
        reader = g.lease or ("[red]no scorer[/]" if g.lag or g.pending else "no scorer")
        stream.add_row(f"stream {g.name}", f"length {g.length}, lag {g.lag}, pending {g.pending}, oldest unprocessed"
                       f" {age}, read by {reader}" + (f", [red]{g.dead_letters} dead letters[/]" if g.dead_letters else ""))
    stream.add_row("dead letters", str(dead) if not dead else f"[red]{dead}[/]")
    if not seen.heartbeats_s:
        stream.add_row("scorers", "[red]none beating[/]")
        healthy = False
    for consumer, beat in sorted(seen.heartbeats_s.items()):
        stream.add_row(f"scorer {consumer}", f"last beat {beat:.1f} s ago")
    console.print(stream)
    return healthy and dead == 0
