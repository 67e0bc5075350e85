"""The load run's SLO gate: every SLO judged, the failing ones named, freshness from histogram deltas."""

from __future__ import annotations

import math

from loadtests.slo import Row, freshness_buckets, judge, p99_upper_bound

METRICS = """# HELP cchc_scorer_freshness_seconds x
cchc_scorer_freshness_seconds_bucket{{consumer="scorer-1",le="0.1"}} {a}
cchc_scorer_freshness_seconds_bucket{{consumer="scorer-1",le="1.0"}} {b}
cchc_scorer_freshness_seconds_bucket{{consumer="scorer-1",le="5.0"}} {c}
cchc_scorer_freshness_seconds_bucket{{consumer="scorer-1",le="+Inf"}} {c}
"""


def rows(submit_p99: float = 40, start_p99: float = 30, failures: int = 0, refused: int = 0) -> list[Row]:
    found = [Row("POST", "submit", 28_000, failures, submit_p99), Row("POST", "start attempt", 29_000, 0, start_p99),
             Row("", "Aggregated", 60_000, failures, 50)]
    return [*found, Row("REFUSED", "submit 503", refused, 0, 0)] if refused else found


def test_a_good_run_passes_and_says_so() -> None:
    v = judge(rows(), 463, 60, 0.25)
    assert v.passed and v.line().endswith("-> pass") and "submissions 28,000" in v.line()


def test_each_broken_slo_is_named() -> None:
    v = judge(rows(submit_p99=300, start_p99=260, failures=3, refused=2), 463, 60, 5.0)
    assert not v.passed and v.line().startswith("SLO gate:") and "-> fail" in v.line()
    assert any("submission p99 300" in f for f in v.failed) and any("attempt start p99 260" in f for f in v.failed)
    assert any("3 failed" in f for f in v.failed) and any("2 refusals" in f for f in v.failed)
    assert any("freshness" in f for f in v.failed)
    assert judge(rows(refused=2), 463, 60, 0.1, refusals_allowed=True).passed  # headroom steps may be refused
    assert any("arrived" in f for f in judge(rows(), 600, 60, 0.1).failed)  # 467/s is not 600/s


def test_freshness_p99_from_the_histogram_between_two_scrapes() -> None:
    before = freshness_buckets([METRICS.format(a=100, b=100, c=100)])
    after = freshness_buckets([METRICS.format(a=150, b=199, c=200), METRICS.format(a=0, b=0, c=0)])
    assert p99_upper_bound(before, after) == 1.0  # 99 of the 100 new batches within 1 s
    assert p99_upper_bound(after, after) is None
    assert math.isinf(max(after))
