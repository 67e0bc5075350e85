"""`make run` as a person meets it (issue 22): `cchc demo --keep` prints the quiz page's address with a period
open long enough to take it, the results page's and the desk's with the organiser's name and token, and each
of them answers; Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.front_end import front_end
from tests.paths import ROOT


def _stop_left_postgres(data: Path) -> None:
    """A demo killed (not interrupted) leaves its PostgreSQL running, which pg_ctl detached: stop it."""
    pid_file = data / "postgres" / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@pytest.mark.timeout(300)
def test_the_demo_prints_the_quiz_page_the_results_page_and_the_desk(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCHC_")}
    data = tmp_path / "data"
    demo = subprocess.Popen([sys.executable, "-m", "ops.cli", "demo", "--keep", "--participants", "20",
                             "--open-minutes", "2", "--data-dir", str(data)], cwd=ROOT,
                            env={**env, "COLUMNS": "400"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        while not any(line.startswith("the committee's desk:") for line in said):
            assert time.monotonic() < deadline and demo.poll() is None, "".join(said)
            said.append(demo.stdout.readline())
        text = "".join(said)
        quiz = re.search(r"quiz page: (http://127\.0\.0\.1:\d+/) .*?stays\s+open\s+2\s+minutes", text, re.S)
        results = re.search(r"results page: (http://127\.0\.0\.1:\d+/)", text)
        desk = re.search(r"the committee's desk: (http://127\.0\.0\.1:\d+/) .*?Tên\s+admin\s+and\s+Mã\s+(\S+)", text, re.S)
        assert quiz and results and desk, text
        status, _, landing = front_end(quiz.group(1))
        assert status == 200 and "Đăng ký" in landing and "Đăng nhập" in landing
        assert "Đăng ký" in front_end(quiz.group(1) + "dang-ky")[2]
        assert front_end(results.group(1))[0] == 200
        assert "Đăng nhập" in front_end(desk.group(1) + "dang-nhap")[2]
        assert len(desk.group(2)) >= 20  # the demo organiser's token, to sign in with
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C: the stack stops what it started
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            _stop_left_postgres(data)
            raise
        finally:
            if demo.stdout is not None:
                demo.stdout.close()
    # Ctrl-C stopped what it started: the servers' files are gone and nothing answers on the quiz page's port
    assert not (data / "stack.env").exists() and not (data / "postgres" / "postmaster.pid").exists()
    port = int(quiz.group(1).rsplit(":", 1)[1].strip("/"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
