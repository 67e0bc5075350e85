"""Who yields the CPU: the committee's work (its local backends, their parallel workers, the desk) to the write path.

Linux's autogroup shares the CPU between sessions, and PostgreSQL starts every backend and every parallel worker
in a session of its own, so a process's niceness alone does not lower its share against ingest's session: its
session's niceness (/proc/PID/autogroup) does. Figures: BENCHMARKS.md, "The committee's desk at 1 M, a fifth time".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger()

POLL_S = 0.1  # how often the yielding thread looks: a worker lives for its query (a committee's lasts seconds)

# PostgreSQL's title of the helpers a parallel query forks (`postgres: parallel worker for PID 1234`).
_PARALLEL_WORKER_TITLE = re.compile(rb"parallel worker for PID (\d+)")

_state_lock = threading.Lock()
_servers: dict[int, int] = {}  # postmaster pid → the niceness its lowered backends' workers get
_pending: dict[int, int] = {}  # pid → niceness its session is still to get (refused for now: EAGAIN)
_thread: threading.Thread | None = None


def lower_priority(pid: int, nice: int) -> bool:
    """Run the local process `pid` at `nice`, and its session at `nice` when it leads one (autogroup). An
    unprivileged process may change a session's niceness once a tenth of a second, machine-wide: one refused
    for now is retried by the yielding thread. Raising a niceness needs no privilege over one's own processes;
    another user's (a server run as its own user) needs root. Returns whether either was done or is under way."""
    done = _lower_process(pid, nice)
    group = _lower_session(pid, nice)
    if group is None:
        with _state_lock:
            _pending[pid] = nice
            _start_thread()
    return done or group is not False


def _lower_process(pid: int, nice: int) -> bool:
    """`pid`'s own niceness at least `nice` (never raised: an operator's lower priority stays)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
        return True
    except OSError:
        return False


def _lower_session(pid: int, nice: int) -> bool | None:
    """True: `pid`'s session (autogroup) at `nice`; False: not possible (no autogroup, not ours, gone); None:
    refused for now (EAGAIN: the kernel's limit of one change a tenth of a second without CAP_SYS_ADMIN)."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        return True
    except OSError as e:
        return None if e.errno == errno.EAGAIN else False


def is_local_backend(host: str, pid: int, user: str, dbname: str) -> bool:
    """Whether the PostgreSQL backend `pid` of a connection to `host` as `user` on `dbname` is a process of this
    host (a Unix socket or loopback), so that `pid` names it — its title says whose it is — and not some other
    process here (a server in a container behind a mapped port, a pooler)."""
    if not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
        return False
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return title.startswith(b"postgres: ") and f" {user} {dbname} ".encode() in title


def server_of(backend: int) -> int | None:
    """The local PostgreSQL server (its postmaster's pid) that forked the backend `backend`."""
    try:
        stat = Path(f"/proc/{backend}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def lower_parallel_workers(postmaster: int, nice: int) -> None:
    """From now on, every parallel worker the local server `postmaster` forks for a backend at `nice` or a
    lower priority runs at `nice` too, its session with it: a lowered backend's query would otherwise take its
    workers' full shares beside it. PostgreSQL has no hook for it, so the yielding thread reads the server's
    children every POLL_S, each new one's title once. A worker is known by its leader's niceness, not by whose
    leader it is: every backend lowered this much yields its workers too. The first niceness asked wins."""
    with _state_lock:
        if postmaster not in _servers:
            _servers[postmaster] = nice
            _start_thread()


def lower_own_priority(nice: int) -> None:
    """This process at `nice` (the threads it starts afterwards with it), and its session when it leads one
    (`cchc up` starts each tier so), never the session of a terminal that started it."""
    if os.getsid(0) == os.getpid():
        lower_priority(os.getpid(), nice)
    else:
        _lower_process(os.getpid(), nice)


def _start_thread() -> None:
    """The yielding thread, unless it runs (called under _state_lock); it ends when nothing is left to watch."""
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_yield_loop, name="cchc-yielding", daemon=True)
        _thread.start()


def _yield_loop() -> None:
    global _thread
    seen: dict[int, set[int]] = {}  # per server: the children whose title was read
    while True:
        with _state_lock:
            if not _servers and not _pending:
                _thread = None
                return
            servers, pending = dict(_servers), dict(_pending)
        try:
            _retry_sessions(pending)
            for postmaster, nice in servers.items():
                seen[postmaster] = _lower_new_workers(postmaster, nice, seen.get(postmaster, set()))
        except Exception:  # a bug here must not end the yielding quietly
            log.exception("yielding_failed")
        time.sleep(POLL_S)


def _retry_sessions(pending: dict[int, int]) -> None:
    """The sessions refused for now, in order, until the kernel refuses again (one change a tenth of a second)."""
    for pid, nice in pending.items():
        result = _lower_session(pid, nice)
        if result is None:
            return
        with _state_lock:
            _pending.pop(pid, None)


def _lower_new_workers(postmaster: int, nice: int, seen: set[int]) -> set[int]:
    """Reads the children of `postmaster` not read yet; lowers the parallel workers of lowered backends. Returns
    the children read (those gone dropped)."""
    try:
        children = {int(pid) for pid in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()}
    except OSError:
        with _state_lock:
            _servers.pop(postmaster, None)
        if Path(f"/proc/{postmaster}").exists():  # a kernel without CONFIG_PROC_CHILDREN
            log.warning("parallel_workers_priority_unchanged", postmaster=postmaster,
                        reason="this kernel does not list a process's children")
        return set()
    seen &= children
    for pid in children - seen:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if not title.startswith(b"postgres: "):  # just forked: its title is not set yet, read again next time
            continue
        seen.add(pid)
        worker = _PARALLEL_WORKER_TITLE.search(title)
        with contextlib.suppress(OSError):  # the worker or its leader gone meanwhile
            if worker and os.getpriority(os.PRIO_PROCESS, int(worker[1])) >= nice:
                lower_priority(pid, nice)
    return seen
