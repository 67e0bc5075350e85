"""runtime.cpu: a session's niceness the kernel refuses for now is set on a later try."""

from __future__ import annotations

import subprocess
import time

import pytest

from runtime import cpu


def test_a_session_refused_for_now_is_lowered_by_the_yielding_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unprivileged, Linux changes a session's niceness once a tenth of a second machine-wide (EAGAIN otherwise):
    a refusal is not the end of it."""
    answers = iter([None, None, True])  # refused, refused, done
    tries: list[int] = []

    def lower_session(pid: int, nice: int) -> bool | None:
        tries.append(pid)
        return next(answers)

    monkeypatch.setattr(cpu, "_lower_session", lower_session)
    monkeypatch.setattr(cpu, "POLL_S", 0.01)
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert cpu.lower_priority(child.pid, 0)  # its own niceness unchanged (0), its session under way
        deadline = time.monotonic() + 5
        while child.pid in cpu._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.pid not in cpu._pending
        assert tries == [child.pid] * 3
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_no_backend_is_not_taken_for_one() -> None:
    """A pid a connection reports names a backend of this host only if its title says whose it is."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not cpu.is_local_backend("127.0.0.1", child.pid, "postgres", "postgres")
        assert not cpu.is_local_backend("db.example", child.pid, "postgres", "postgres")
    finally:
        child.kill()
        child.wait()
