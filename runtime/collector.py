"""Python's cyclic garbage collector set for a long-running process that answers thousands of requests a second.

Two measures, both measured under `make loadtest` (BENCHMARKS.md):
- What start-up built (the modules, the contest, the routes, the clients) lives as long as the process: frozen out
  of the collector's sight, a full collection scans only what requests create (before: a 44 ms pause every few
  seconds at the peak, the submissions' p99).
- The youngest generation is collected after 50,000 new containers instead of 700. Almost everything a request
  allocates is freed by reference counting when it is answered, so a collection every 700 allocations found little
  and cost much: at the design peak ingest made ~20 collections a second, the load generator ~9 (their CPU: 4–10 %
  of each process); with 50,000, none in a minute. The older generations keep CPython's thresholds (10, 10).
  The price: garbage in reference cycles lives longer, up to 50,000 containers and whatever they hold — so the
  request paths make none (an error answered from the connection did, through its traceback, holding each
  request's body: runtime/fastpath.py; tests/integration/test_ingest_fastpath.py counts what errors leave).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (10, 10)  # CPython's own: gen1 every 10 young collections, gen2 every 10 of those (and its 25 % rule)


def settle() -> None:
    """Call once, when start-up is done and before the first request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
