"""Who yields the CPU: the committee's database work to the write path, on a host they share."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

log = structlog.get_logger()
# The niceness of the committee's backends: 0, as every other, unless the duty engineer asks (CCHC_COMMITTEE_NICE;
# at 10 a busy backend gets about a tenth of what one at 0 gets when both want the CPU). Measured at 1 M beside
# 1,000 submissions/s: 10 halved ingest's p50 rise but made a close 35-46 s and the Excel export 10.6-16 s, over
# DESIGN §9's 30 s and 10 s (BENCHMARKS.md), so it is off by default.
COMMITTEE_NICE = int(os.environ.get("CCHC_COMMITTEE_NICE", "0"))


def lower_priority(pid: int, nice: int | None = None) -> bool:
    """Run the local process `pid` at `nice`: its own scheduling priority and, where Linux groups the CPU by
    session (autogroup: PostgreSQL starts every backend in a session of its own), its session's. Raising a
    niceness needs no privilege over one's own processes; another user's (a server run as its own user) needs
    root. `nice`: COMMITTEE_NICE unless given. Returns whether it was done (nice 0: nothing to do)."""
    nice = COMMITTEE_NICE if nice is None else nice
    if nice <= 0:
        return True
    done = False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
        done = True
    except OSError:
        pass
    autogroup = Path(f"/proc/{pid}/autogroup")
    try:
        autogroup.write_text(str(nice))
        done = True
    except OSError:  # no autogroup in this kernel, or not ours to change
        pass
    return done


def is_local_backend(host: str, pid: int) -> bool:
    """Whether the PostgreSQL backend `pid` of a connection to `host` is a process of this host (a Unix
    socket or loopback), so that `pid` names it and not some other process here."""
    if not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False
