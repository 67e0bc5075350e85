"""What `cchc contest check` prints about a valid contest: the facts an organiser checks by eye."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from contest.model import Contest


def _local(ms: int, contest: Contest) -> str:
    return datetime.fromtimestamp(ms / 1000, contest.tz).strftime("%H:%M %d/%m/%Y")


def summary(contest: Contest) -> list[str]:
    """Periods, groups and prizes, units and headcounts, the bank per group, the rules that differ
    from the defaults a reader might assume."""
    r, up = contest.rules, contest.unit_prizes
    lines = [f"contest {contest.slug}: {contest.title}", f"  time zone {contest.timezone}",
             f"periods: {len(contest.periods)}"]
    lines += [f"  {p.number}. {p.name}: {_local(p.start_ms, contest)} → {_local(p.end_ms, contest)}"
              for p in contest.periods]
    lines.append(f"groups: {len(contest.groups)}")
    for g in contest.groups:
        prizes = ", ".join(f"{p.count} {p.name}" for p in g.prizes if p.count) or "no prizes"
        lines.append(f"  {g.code} ({g.name}): {'counts' if g.counts_for_units else 'does not count'} for units;"
                     f" {sum(p.count for p in g.prizes)} prizes a period: {prizes};"
                     f" bank {len(contest.bank(g.code))} questions")
    heads = contest.prize_unit_headcounts()
    kinds = Counter(u.kind or "(none)" for u in contest.units.values())
    lines.append(f"units: {len(contest.units)} in the tree, {len(heads)} prize units,"
                 f" headcount {sum(heads.values()):,} (smallest prize unit {min(heads.values()):,},"
                 f" largest {max(heads.values()):,})")
    for kind, n in sorted(kinds.items()):
        target = contest.target_of(kind)
        lines.append(f"  kind {kind}: {n} unit(s){f', participation target {target:.0%}' if target else ''}")
    lines.append(f"unit prizes: {up.weekly_count} a period{' (once per unit)' if up.once_per_unit else ''},"
                 f" {up.final_count} at the end; score = {up.weight_participation} × participation +"
                 f" {up.weight_score} × score ratio; minimum participation {up.min_participation_rate:.0%}")
    lines.append(f"attempts: {r.questions_per_attempt} questions × {r.points_per_correct} points,"
                 f" {r.time_limit_seconds // 60} min + {r.grace_seconds} s, {r.attempts_per_period} a period,"
                 f" {r.attempt_selection} counts; prediction: {r.prediction_target} ({r.prediction_mode})")
    lines.append(f"registration: minimum age {r.min_age}, CCCD check {r.id_check},"
                 f" {len(contest.excluded)} excluded; one prize per person: {'yes' if r.one_prize_per_person else 'no'}")
    return lines


def warnings(contest: Contest) -> list[str]:
    """What is allowed but a real contest must think about (DESIGN §6, §10)."""
    privacy = contest.privacy
    if privacy is None:
        return ["no [privacy] table: registrations ask no consent. A real contest needs one (the notice a registrant"
                " accepts, its version, the controller and retention_days)"]
    if privacy.retention_days == 0:
        return ["[privacy] retention_days = 0: every participant's personal data is erased at the first `cchc forget"
                " --expired` after the last close (hourly under `cchc up`). Make the winners' personal-data export"
                " (`cchc export N --personal-data`) of every period before then — the last period's right after"
                " its close — or there will be no CCCD, phone or birth date for the prize paperwork"]
    return []
