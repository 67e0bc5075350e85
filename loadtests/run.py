"""`make loadtest`: start a local stack, run the locustfile headless with worker processes against
it (loopback, bounded by the load shape), write the HTML and CSV reports, stop the stack.

    .venv/bin/python -m loadtests.run [--processes 2] [--peak-users 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.embedded import free_port
from ops.presets import one_long_period
from ops.settings import Settings
from ops.stack import Stack

HERE = Path(__file__).parent
REPORTS = HERE / "reports"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="locust worker processes")
    parser.add_argument("--peak-users", type=int, default=120)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cchc-loadtest-"))
    settings = Settings(contest_dir=one_long_period(workdir / "contest"), data_dir=workdir / "data",
                        ingest_port=free_port(), results_port=free_port(), log_level="warning")
    stack = Stack(settings, scorers=1)
    REPORTS.mkdir(exist_ok=True)
    try:
        running = stack.start()
        print(stack.ready_line(), flush=True)
        env = {**os.environ, "CCHC_LOAD_RESULTS": f"http://127.0.0.1:{running.results_port}",
               "CCHC_LOAD_PEAK_USERS": str(args.peak_users)}
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
             "--host", f"http://127.0.0.1:{running.ingest_port}", "--processes", str(args.processes),
             "--html", str(REPORTS / "cut-off-peak.html"), "--csv", str(REPORTS / "cut-off-peak"),
             "--only-summary"], env=env, timeout=600)
        print(f"reports: {REPORTS}/cut-off-peak.html and cut-off-peak_*.csv")
        return done.returncode
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
