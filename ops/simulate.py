"""`cchc simulate`: bulk-generate a realistic week straight into the stream, for scale tests.

Participants register, start up to `attempts_per_period` attempts each, and submit; submission
times crowd towards the cut-off (most entries in the last hours before Monday 08:00), answers
are right with a per-person skill, predictions scatter around a guess. The events are exactly
what ingest appends, and the participants are known to Redis, so the API works on them too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from contest.model import Contest, Period
from eventstore.events import AnyEvent, AttemptStarted, ParticipantRegistered, SubmissionReceived, encode_many
from eventstore.ids import uuid7
from eventstore.keys import CONTEST_STREAM, Keys
from eventstore.redis_stream.writer import StreamWriter

PEAK_SHARE = 1 / 8  # the mean distance of a submission from the cut-off, as a share of the period


def spelled(n: int) -> str:
    """A number as letters (`12` → `BC`): synthetic people need distinct names, and a name holds
    letters, marks, spaces and . - ' only."""
    return "".join("ABCDEGHKLM"[int(d)] for d in str(n))


def week(contest: Contest, period: Period, participants: int, entries: int, *, seed: int = 7
         ) -> Iterator[list[AnyEvent]]:
    """Stream entries (one event each) for `participants` people and about `entries` submissions."""
    rng = random.Random(seed)
    counting = [u.code for u in contest.units.values()]
    groups = [g.code for g in contest.groups]
    banks = {g: contest.bank(g) for g in groups}
    key = {q.id: q.answer for q in contest.questions.values()}
    rules = contest.rules
    length = period.end_ms - period.start_ms
    per_person = max(1.0, entries / max(participants, 1))
    for n in range(participants):
        pid = uuid7(period.start_ms)
        group = groups[0] if len(groups) == 1 or rng.random() < 0.8 else rng.choice(groups[1:])
        unit = rng.choice(counting) if contest.group(group).counts_for_units else None  # type: ignore[union-attr]
        yield [ParticipantRegistered(
            participant_id=pid, group=group, unit_code=unit, display_name=f"Người Dự Thi {spelled(n)}",
            phone_masked="0900***000", id_hash=f"{n:064x}", phone_hash=f"{n + 10**12:064x}", pii=b"",
            registered_ms=period.start_ms)]
        skill = rng.betavariate(5, 2)
        attempts = min(rules.attempts_per_period, max(1, round(rng.gauss(per_person, 0.7))))
        for _ in range(attempts):
            received = period.end_ms - 1 - int(rng.expovariate(1 / (length * PEAK_SHARE))) % length
            started = max(period.start_ms, received - rng.randint(30_000, rules.time_limit_seconds * 1000))
            aid = uuid7(started)
            questions = rng.sample(banks[group], rules.questions_per_attempt)
            yield [AttemptStarted(attempt_id=aid, participant_id=pid, period=period.number, started_ms=started,
                                  question_ids=questions)]
            answers = {q: key[q] if rng.random() < skill else rng.choice("ABCD") for q in questions}
            yield [SubmissionReceived(
                submission_id=uuid7(received), attempt_id=aid, participant_id=pid, group=group, unit_code=unit,
                period=period.number, started_ms=started, received_ms=received, question_ids=questions,
                answers=answers, prediction=max(0, int(rng.gauss(entries, entries / 3))))]


def by_stream(keys: Keys, entries: list[list[AnyEvent]]) -> dict[int, list[bytes]]:
    """Stream entries where ingest would append them: registrations to the contest's stream, the rest
    to their participant's partition."""
    streams: dict[int, list[bytes]] = {}
    for events in entries:
        first = events[0]
        number = CONTEST_STREAM if isinstance(first, ParticipantRegistered) \
            else keys.partition_of(first.participant_id)  # type: ignore[union-attr]  # every other event names one
        streams.setdefault(number, []).append(encode_many(events))
    return streams


async def simulate(contest: Contest, writer: StreamWriter, period: Period, participants: int, entries: int,
                   *, progress: object = None) -> int:
    """Append the week to the stream (and the participants to Redis); returns the entries written."""
    written = 0
    batch: list[list[AnyEvent]] = []

    async def flush() -> None:
        await writer.add_participants({e.participant_id: f"{e.group}|{e.unit_code or ''}" for events in batch
                                       for e in events if isinstance(e, ParticipantRegistered)})
        await writer.append_to(by_stream(writer.keys, batch))
        if callable(progress):
            progress(len(batch))
        batch.clear()

    for events in week(contest, period, participants, entries):
        batch.append(events)
        written += 1
        if len(batch) == 5000:
            await flush()
    if batch:
        await flush()
    return written
