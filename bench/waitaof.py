"""Why acks on a replicated Valkey send WAIT 1 before WAITAOF 1 1 (eventstore.redis_stream.synced_commands):
a write followed by WAITAOF 1 1 alone, against the same write followed by WAIT 1 and WAITAOF 1 1, on a
master and one replica (both appendfsync always) from the embedded binary.

    .venv/bin/python -m bench.waitaof [--rounds 8]

Loopback only; its two servers are its own and stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from ops.embedded import EmbeddedValkey

TIMEOUT_MS = 3000


def rounds(client: redis.Redis, commands: list[tuple[Any, ...]], count: int) -> tuple[list[float], object]:
    took, last = [], None
    for n in range(count):
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        pipe.set("bench:waitaof", n)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        last = pipe.execute()[-1]
        took.append((time.perf_counter() - started) * 1000)
    return took, last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cchc-bench-waitaof-") as tmp:
        master = EmbeddedValkey(Path(tmp) / "master")
        master.start()
        replica = EmbeddedValkey(Path(tmp) / "replica", extra=("--replicaof", "127.0.0.1", str(master.port)))
        replica.start()
        client = redis.Redis(port=master.port)
        try:
            for _ in range(100):
                if "state=online" in str(client.info("replication")):
                    break
                time.sleep(0.1)
            print(f"a write, then (master + 1 replica, appendfsync always; {args.rounds} rounds):")
            plans: list[tuple[str, list[tuple[Any, ...]]]] = [
                ("WAITAOF 1 1", [("WAITAOF", 1, 1, TIMEOUT_MS)]),
                ("WAIT 1, WAITAOF 1 1", [("WAIT", 1, TIMEOUT_MS), ("WAITAOF", 1, 1, TIMEOUT_MS)])]
            for label, commands in plans:
                took, answer = rounds(client, commands, args.rounds)
                print(f"  {label:<22} median {statistics.median(took):8.2f} ms  (max {max(took):8.2f} ms)"
                      f"  WAITAOF answered {answer} (local fsyncs, replica fsyncs)")
        finally:
            client.close()
            replica.stop()
            master.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
