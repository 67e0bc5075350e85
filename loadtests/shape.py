"""The Monday 08:00 peak, computed from a contest's parameters (DESIGN §1), and the request mix it implies.

Pure arithmetic, no I/O: `make loadtest` prints it at the start, the locustfile drives it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContestLoad:
    """What a contest week looks like at its busiest minute."""

    participants: int = 1_000_000  # DESIGN §1: plan for 1 M participants …
    entries_per_week: int = 5_000_000  # … and 5 M entries a week
    last_hours_share: float = 0.4  # the share of a week's entries that arrives in its last hours
    last_hours: float = 6.0
    peak_factor: float = 5.0  # the peak minute against the mean of those hours
    # Per submission at the peak: attempts started and never submitted, newcomers registering (most
    # people registered earlier in the week), results-page reads (a standing, a leaderboard page).
    abandoned_per_submission: float = 0.05
    registrations_per_submission: float = 0.05
    standings_per_submission: float = 1.0
    leaderboards_per_submission: float = 0.5

    @property
    def peak_submissions_per_s(self) -> float:
        hours_mean = self.entries_per_week * self.last_hours_share / (self.last_hours * 3600)
        return hours_mean * self.peak_factor

    def mix(self, submissions_per_s: float) -> Mix:
        """Every kind of request per second when submissions arrive at `submissions_per_s`."""
        s = submissions_per_s
        return Mix(submissions=s, attempt_starts=s * (1 + self.abandoned_per_submission),
                   registrations=s * self.registrations_per_submission,
                   standings=s * self.standings_per_submission, leaderboards=s * self.leaderboards_per_submission)

    def describe(self) -> list[str]:
        mean = self.entries_per_week * self.last_hours_share / (self.last_hours * 3600)
        mix = self.mix(self.peak_submissions_per_s)
        return [
            f"contest: {self.participants:,} participants, {self.entries_per_week:,} entries a week;"
            f" {self.last_hours_share:.0%} of them in the last {self.last_hours:g} hours = {mean:,.1f} submissions/s"
            f" on average, the peak minute {self.peak_factor:g}× that",
            f"design peak: {mix.submissions:,.0f} submissions/s + {mix.attempt_starts:,.0f} attempt starts/s"
            f" + {mix.registrations:,.0f} registrations/s + {mix.standings + mix.leaderboards:,.0f} results reads/s"
            f" = {mix.total:,.0f} requests/s, and the quiz page's own around them (its views, /v1/contest,"
            " /v1/attempts/current); open model (arrivals at a rate, whatever the answers' speed)",
        ]


@dataclass(frozen=True)
class Mix:
    """Requests per second of each kind."""

    submissions: float
    attempt_starts: float
    registrations: float
    standings: float
    leaderboards: float

    @property
    def total(self) -> float:
        return self.submissions + self.attempt_starts + self.registrations + self.standings + self.leaderboards

    def arrivals(self) -> dict[str, float]:
        """Arrival rates by journey: a submission journey starts an attempt, thinks and submits; an
        abandoned one only starts; the others are single requests."""
        return {"submit": self.submissions, "abandon": self.attempt_starts - self.submissions,
                "register": self.registrations, "standing": self.standings, "leaderboard": self.leaderboards}


@dataclass(frozen=True)
class Stage:
    """Offer `rate` submissions/s (with its mix) from `start_s` to `end_s` of the run, ramping linearly
    from the previous stage's rate over `ramp_s`."""

    start_s: float
    end_s: float
    rate: float
    ramp_s: float = 0.0


def rate_at(stages: list[Stage], t: float) -> float | None:
    """The submissions/s to offer `t` seconds into the run; None when the run is over."""
    previous = 0.0
    for stage in stages:
        if t < stage.end_s:
            if stage.ramp_s and t < stage.start_s + stage.ramp_s:
                return previous + (stage.rate - previous) * max(0.0, t - stage.start_s) / stage.ramp_s
            return stage.rate
        previous = stage.rate
    return None


def peak_run(rate: float, *, ramp_s: float = 20, hold_s: float = 60) -> list[Stage]:
    """A ramp to `rate`, held `hold_s` seconds (the window the SLO gate judges), then stop."""
    return [Stage(0, ramp_s, rate, ramp_s), Stage(ramp_s, ramp_s + hold_s, rate)]
