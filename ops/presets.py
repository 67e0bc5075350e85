"""Throwaway contests and stacks for the tools that run a whole system of their own: benchmarks,
load and chaos tests, ops-check (a temporary directory, free loopback ports, cleaned up after)."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contest.model import Contest
from ops.embedded import free_port
from ops.stack import Stack
from runtime.settings import REPO_CONTESTS, Settings


def one_long_period(dest: Path, *, slug: str | None = None, seconds: int = 3600,
                    attempts_per_period: int | None = None, count: int = 1, privacy: bool = False) -> Path:
    """The demo contest with a single period open from the stack's start for `seconds` (or `count` such
    periods one after the other; and, for load tests, more attempts per participant). Without `privacy` its
    [privacy] table is left out: the tools that post registrations of their own need send no consent (the
    load test keeps it, as the quiz page sends it)."""
    shutil.copytree(REPO_CONTESTS / "demo", dest)
    toml = dest / "contest.toml"
    text = toml.read_text()
    if not privacy:
        text = re.sub(r"(?ms)^\[privacy\].*?\n\n", "", text)
    text = (text[:text.index("[schedule]")] + f"[schedule]\ncount = {count}\nperiod_seconds = {seconds}\n\n"
            + text[text.index("[[groups]]"):])
    if slug is not None:
        text = text.replace('slug = "demo"', f'slug = "{slug}"')
    if attempts_per_period is not None:
        text = text.replace("attempts_per_period = 3\n", f"attempts_per_period = {attempts_per_period}\n")
    toml.write_text(text)
    return dest


@dataclass(frozen=True)
class Running:
    stack: Stack
    settings: Settings  # as the children run with it: URLs, ports and secrets filled in
    contest: Contest
    workdir: Path  # the tool's own scratch space, removed with the rest

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ingest_port}"

    @property
    def results_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.results_port}"

    @property
    def desk_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.desk_port}"


@contextlib.contextmanager
def throwaway_stack(name: str, *, scorers: int, ingests: int = 1, slug: str | None = None,
                    monitor_interval_s: float = 10.0, attempts_per_period: int | None = None,
                    periods: int = 1, period_seconds: int = 3600, partitions: int = 1,
                    cluster: int = 0, read_replica: bool = False, privacy: bool = False,
                    event_loop: str = Settings.event_loop) -> Iterator[Running]:
    """A whole stack on a one-long-period contest; stopped and deleted on exit, even a failed start."""
    from ops.wiring import contest_of  # the wiring imports every tier: only when a stack is wanted

    workdir = Path(tempfile.mkdtemp(prefix=f"cchc-{name}-"))
    contest_dir = one_long_period(workdir / "contest", slug=slug, attempts_per_period=attempts_per_period,
                                  count=periods, seconds=period_seconds, privacy=privacy)
    settings = Settings(contest_dir=contest_dir, data_dir=workdir / "data",
                        ingest_port=free_port(), results_port=free_port(), desk_port=free_port(),
                        log_level="warning",
                        monitor_interval_s=monitor_interval_s,
                        address_limit=0,  # every simulated front-end shares one loopback address
                        partitions=partitions, event_loop=event_loop)
    stack = Stack(settings, scorers=scorers, ingests=ingests, cluster=cluster, read_replica=read_replica)
    try:
        running = stack.start()
        yield Running(stack, running, contest_of(running), workdir)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
