"""The SLO gate of a load run (issue 13): locust's CSV statistics and the stack's own Prometheus histogram
in, a verdict that names every SLO that failed out. Pure: loadtests/run.py does the I/O."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SUBMIT_P99_MS = 250.0
START_P99_MS = 250.0
FRESHNESS_P99_S = 2.0
MIN_OFFERED = 0.95  # below this share of the offered submissions the generator, not the server, set the pace


@dataclass(frozen=True)
class Row:
    kind: str
    name: str
    requests: int
    failures: int
    p99_ms: float


@dataclass
class Verdict:
    rate: float  # submissions/s offered in the hold
    hold_s: float
    submissions: int
    starts: int
    submit_p99_ms: float
    start_p99_ms: float
    failures: int
    refusals: int
    freshness_p99_s: float | None
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def achieved(self) -> float:
        return self.submissions / self.hold_s if self.hold_s else 0.0

    def line(self) -> str:
        fresh = "unknown" if self.freshness_p99_s is None else (
            f"≤ {self.freshness_p99_s:g} s" if math.isfinite(self.freshness_p99_s) else "> 300 s")
        outcome = "pass" if self.passed else "fail (" + "; ".join(self.failed) + ")"
        return (f"SLO gate: offered {self.rate:,.0f} submissions/s for {self.hold_s:g} s: submissions {self.submissions:,}"
                f" ({self.achieved:,.0f}/s), p99 {self.submit_p99_ms:.0f} ms; attempt starts {self.starts:,}, p99"
                f" {self.start_p99_ms:.0f} ms; failures {self.failures}; refusals (429/503) {self.refusals};"
                f" freshness p99 {fresh} -> {outcome}")


def read_stats(path: Path) -> list[Row]:
    """locust's `<prefix>_stats.csv`."""
    with path.open(newline="") as fh:
        return [Row(r["Type"], r["Name"], int(r["Request Count"]), int(r["Failure Count"]),
                    float(r["99%"]) if r["99%"] not in ("", "N/A") else 0.0) for r in csv.DictReader(fh)]


_BUCKET = re.compile(r'^cchc_scorer_freshness_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+([0-9.e+]+)')


def freshness_buckets(expositions: Iterable[str]) -> dict[float, float]:
    """le → cumulative count of the freshness histogram, summed over every scorer's /metrics text."""
    total: dict[float, float] = {}
    for text in expositions:
        for line in text.splitlines():
            if m := _BUCKET.match(line):
                le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
                total[le] = total.get(le, 0.0) + float(m.group(2))
    return total


def p99_upper_bound(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The smallest bucket bound holding 99 % of the batches committed between the two scrapes (None:
    no batch at all)."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    count = delta.get(math.inf, 0.0)
    if count <= 0:
        return None
    return next(le for le in sorted(delta) if delta[le] >= 0.99 * count)


def judge(rows: list[Row], rate: float, hold_s: float, freshness_p99_s: float | None, *,
          refusals_allowed: bool = False) -> Verdict:
    """Every SLO of the peak: submission and attempt-start p99, no failure, no refusal (at the design
    peak), freshness p99, and the generator really offering the rate."""
    by = {(r.kind, r.name): r for r in rows}
    submit = by.get(("POST", "submit"), Row("POST", "submit", 0, 0, 0.0))
    start = by.get(("POST", "start attempt"), Row("POST", "start attempt", 0, 0, 0.0))
    failures = sum(r.failures for r in rows if r.name != "Aggregated" and r.kind != "REFUSED")
    refusals = sum(r.requests for r in rows if r.kind == "REFUSED")
    v = Verdict(rate, hold_s, submit.requests, start.requests, submit.p99_ms, start.p99_ms, failures, refusals,
                freshness_p99_s)
    if submit.p99_ms > SUBMIT_P99_MS:
        v.failed.append(f"submission p99 {submit.p99_ms:.0f} ms > {SUBMIT_P99_MS:.0f} ms")
    if start.p99_ms > START_P99_MS:
        v.failed.append(f"attempt start p99 {start.p99_ms:.0f} ms > {START_P99_MS:.0f} ms")
    if failures:
        v.failed.append(f"{failures} failed requests")
    if refusals and not refusals_allowed:
        v.failed.append(f"{refusals} refusals (429/503)")
    if freshness_p99_s is None:
        v.failed.append("freshness unknown: no scorer batch observed")
    elif freshness_p99_s > FRESHNESS_P99_S:
        v.failed.append(f"freshness p99 > {FRESHNESS_P99_S:g} s")
    if v.achieved < MIN_OFFERED * rate:
        v.failed.append(f"only {v.achieved:,.0f} of {rate:,.0f} submissions/s arrived (the server or the generator"
                        " fell behind)")
    return v
