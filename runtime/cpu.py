"""Who yields the CPU: the committee's database work to the write path, on a host they share.

Off by default (CCHC_COMMITTEE_NICE=0). Measured at 1 M beside 1,000 submissions/s: at 10 ingest's p50 rose
about 2x beside the desk instead of 2-4x, its p99 no better, while a close took 35-46 s and the Excel export
10.6-16 s, over DESIGN §9's 30 s and 10 s (BENCHMARKS.md): a knob for a single box whose write path matters
more than the desk's speed."""

from __future__ import annotations

import os
from pathlib import Path


def lower_priority(pid: int, nice: int) -> bool:
    """Run the local process `pid` at `nice`: its own scheduling priority and, where Linux groups the CPU by
    session (autogroup: PostgreSQL starts every backend in a session of its own), its session's. Raising a
    niceness needs no privilege over one's own processes; another user's (a server run as its own user) needs
    root. Returns whether either was done."""
    done = False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
        done = True
    except OSError:
        pass
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
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
