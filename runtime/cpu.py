"""Who yields the CPU: the committee's database work to the write path, on a host they share."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

log = structlog.get_logger()
# A busy process at nice 10 gets about a tenth of what one at 0 gets when both want the CPU. 0 turns it off: the
# duty engineer's way back when the committee's work matters more than the write path's tail (README).
COMMITTEE_NICE = int(os.environ.get("CCHC_COMMITTEE_NICE", "10"))


def lower_priority(pid: int, nice: int = COMMITTEE_NICE) -> bool:
    """Run the local process `pid` at `nice`: its own scheduling priority and, where Linux groups the CPU by
    session (autogroup: PostgreSQL starts every backend in a session of its own), its session's. Raising a
    niceness needs no privilege over one's own processes; another user's (a server run as its own user) needs
    root. Returns whether it was done (nice 0: nothing to do)."""
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
