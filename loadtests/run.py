"""`make loadtest`: start a local stack, run the locustfile headless with worker processes against
it (loopback, bounded by the load shape), write the HTML and CSV reports, stop the stack.

    .venv/bin/python -m loadtests.run [--processes 2] [--peak-users 120]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ops.presets import throwaway_stack

HERE = Path(__file__).parent
REPORTS = HERE / "reports"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="locust worker processes")
    parser.add_argument("--peak-users", type=int, default=120)
    args = parser.parse_args(argv)
    REPORTS.mkdir(exist_ok=True)
    with throwaway_stack("loadtest", scorers=1) as run:
        print(run.stack.ready_line(), flush=True)
        env = {**os.environ, "CCHC_LOAD_RESULTS": run.results_url, "CCHC_LOAD_PEAK_USERS": str(args.peak_users)}
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
             "--host", run.ingest_url, "--processes", str(args.processes),
             "--html", str(REPORTS / "cut-off-peak.html"), "--csv", str(REPORTS / "cut-off-peak"),
             "--only-summary"], env=env, timeout=600)
    print(f"reports: {REPORTS}/cut-off-peak.html and cut-off-peak_*.csv")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
