"""The peak computed from a contest's parameters, its mix, and the stages' rate over time."""

from __future__ import annotations

import pytest

from loadtests.shape import ContestLoad, Stage, peak_run, rate_at


def test_the_design_peak_is_about_460_submissions_a_second() -> None:
    load = ContestLoad()  # 5 M a week, 40 % in the last 6 hours, the peak minute 5× their mean
    assert load.peak_submissions_per_s == pytest.approx(5_000_000 * 0.4 / (6 * 3600) * 5)
    assert 460 < load.peak_submissions_per_s < 465
    mix = load.mix(100)
    assert (mix.submissions, mix.attempt_starts, mix.registrations) == (100, 105, 5)
    assert sum(mix.arrivals().values()) == pytest.approx(mix.total - mix.submissions)  # a journey: start + submit
    assert "463 submissions/s" in "\n".join(load.describe())


def test_stages_ramp_then_hold_then_end() -> None:
    stages = peak_run(400, ramp_s=20, hold_s=60)
    assert rate_at(stages, 0) == 0 and rate_at(stages, 10) == 200 and rate_at(stages, 20) == 400
    assert rate_at(stages, 79.9) == 400 and rate_at(stages, 80) is None
    steps = [Stage(0, 10, 100), Stage(10, 20, 300, ramp_s=10)]
    assert rate_at(steps, 15) == 200
