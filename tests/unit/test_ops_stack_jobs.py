"""What `cchc up` runs on its own (DESIGN §10): `cchc forget --expired` at start and every hour, never two at once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ops.stack import FORGET_EVERY_S, Stack
from runtime.settings import Settings
from tests.paths import TEST_CONTEST


class Job:
    """A started command, as subprocess.Popen answers it; finished when the test says so."""

    def __init__(self, args: list[str], **_: Any) -> None:
        self.args = args
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


def test_up_runs_the_retention_erasure_at_start_then_hourly_one_at_a_time(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Job] = []

    def popen(args: list[str], **options: Any) -> Job:
        started.append(Job(args, **options))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)  # the one ops.stack starts its jobs with
    stack = Stack(Settings(contest_dir=TEST_CONTEST, data_dir=tmp_path, pii_key="x" * 44), scorers=1)
    stack.log_dir.mkdir(parents=True)
    stack.run_scheduled(1000.0)  # at start
    assert [job.args[1:] for job in started] == [["-m", "ops.cli", "forget", "--expired", "--by", "cchc up (retention)"]]
    stack.run_scheduled(1000.0 + FORGET_EVERY_S - 1)  # within the hour: nothing
    stack.run_scheduled(1000.0 + FORGET_EVERY_S + 1)  # due, but the first still runs: nothing
    assert len(started) == 1
    started[0].code = 0
    stack.run_scheduled(1000.0 + FORGET_EVERY_S + 2)  # the first done: the next one
    assert len(started) == 2
    assert (tmp_path / "logs" / "forget.log").exists()  # its output, for the duty staff
