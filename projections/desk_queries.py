"""The committee's reads of the live read model (DESIGN §6b), typed rows out: the flags with the entries
behind them, one participant's file for the hotline, what a key correction would change, whom to remind,
the participants behind a look-up. Committee actions, not public reads: each may pass over a period's
entries once (the flags at 1 M participants / 3 M entries: BENCHMARKS.md), never per entry in Python."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from contest.flags import SHARED_ADDRESS_MIN, FlagCase, FlagEntry
from eventstore.postgres import Pool, connection
from projections.live_queries import NOT_DISQUALIFIED

_answers = msgspec.msgpack.Decoder(dict[str, str])

# An entry behind a flag, with its participant's name and whether they are disqualified.
_FLAG_ENTRY = ("e.participant_id, coalesce(p.display_name, ''), e.unit_code, e.attempt_id, e.score, e.duration_ms,"
               " e.submitted_ms, e.prediction, NOT " + NOT_DISQUALIFIED.format(t="e"))


def _entry(row: Sequence[Any]) -> FlagEntry:
    return FlagEntry(*row[:9])


async def flag_cases(pool: Pool, period: int, min_plausible_seconds: int,
                     shared_min: int = SHARED_ADDRESS_MIN) -> list[FlagCase]:
    """Every flag of the period (contest.flags' rules, computed by the database), as cases: each entry too
    fast; the participants with an entry registered from an address `shared_min` or more registered from,
    with their best entry; the entries of different participants sharing an answer sheet and prediction.
    Answer sheets are compared as stored: keyed in question order (live_queries._msgpack)."""
    cases: list[FlagCase] = []
    async with connection(pool) as conn:
        # One snapshot for the statements below: each rare key (a crowded address, a shared sheet) is found by one
        # pass over an index, then its rows fetched by a hashed list of them. In one statement PostgreSQL would build
        # the hash of a whole pass in each parallel worker, or search the list row by row (BENCHMARKS.md).
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if min_plausible_seconds > 0:
            cur = await conn.execute(
                f"SELECT {_FLAG_ENTRY} FROM entries e LEFT JOIN participants p USING (participant_id)"
                " WHERE e.period = %s AND e.duration_ms < %s ORDER BY e.submitted_ms, e.attempt_id",
                (period, min_plausible_seconds * 1000))
            cases += [FlagCase("too_fast", [_entry(row)]) for row in await cur.fetchall()]
        cur = await conn.execute("SELECT address_hash, count(*) FROM participants WHERE address_hash <> ''"
                                 " GROUP BY address_hash HAVING count(*) >= %s", (shared_min,))
        crowded = dict(await cur.fetchall())
        cur = await conn.execute(
            f"SELECT {_FLAG_ENTRY}, p.address_hash FROM participants p"
            " JOIN LATERAL (SELECT * FROM entries x WHERE x.period = %(period)s AND x.participant_id = p.participant_id"
            "  ORDER BY x.score DESC, x.duration_ms, x.submitted_ms, x.attempt_id LIMIT 1) e ON true"
            " WHERE p.address_hash = ANY(%(crowded)s) ORDER BY p.address_hash, e.participant_id",
            {"crowded": list(crowded), "period": period})
        crowds: dict[str, tuple[int, list[FlagEntry]]] = {}
        for row in await cur.fetchall():
            crowds.setdefault(row[9], (crowded[row[9]], []))[1].append(_entry(row))
        cases += [FlagCase("shared_address", entries, registrations)
                  for registrations, entries in sorted(crowds.values(), key=lambda c: c[1][0].participant_id)]
        # Copies: the sheets whose hash more than one entry shares (through entries_sheet, in hash order: no hash
        # table of millions), then their entries compared exactly, here.
        cur = await conn.execute("SELECT sheet FROM entries WHERE period = %s AND sheet IS NOT NULL"
                                 " GROUP BY sheet HAVING count(*) > 1", (period,))
        shared = [sheet for sheet, in await cur.fetchall()]
        cur = await conn.execute(
            f"SELECT {_FLAG_ENTRY}, e.answers FROM entries e LEFT JOIN participants p ON p.participant_id = e.participant_id"
            " WHERE e.period = %(period)s AND e.sheet = ANY(%(shared)s) ORDER BY e.submitted_ms, e.attempt_id",
            {"period": period, "shared": shared})
        sheets: dict[tuple[bytes, int], list[FlagEntry]] = {}
        for row in await cur.fetchall():
            entry = _entry(row)
            sheets.setdefault((bytes(row[9]), entry.prediction), []).append(entry)
        cases += [FlagCase("copied_entry", entries) for entries in sheets.values()
                  if len({e.participant_id for e in entries}) > 1]
    return cases


class Registration(msgspec.Struct, frozen=True):
    """A participant as the hotline sees them: nothing personal beyond the name and the masked phone."""

    participant_id: str
    display_name: str
    group_code: str
    registered_unit: str | None
    unit_code: str | None  # now (after moves)
    phone_masked: str
    registered_ms: int
    disqualified_reason: str | None
    disqualified_ms: int | None


class EntryRow(msgspec.Struct, frozen=True):
    period: int
    attempt_id: str
    submission_id: str
    unit_code: str | None
    score: int
    correct: int
    questions: int
    duration_ms: int
    prediction: int
    submitted_ms: int


async def registration(pool: Pool, participant_id: str) -> Registration | None:
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT p.participant_id, p.display_name, p.group_code, p.unit_code,"
            " coalesce((SELECT m.unit_code FROM unit_moves m WHERE m.participant_id = p.participant_id"
            "  ORDER BY m.ev_ms DESC, m.ev_seq DESC, m.ev_part DESC, m.ev_idx DESC LIMIT 1), p.unit_code),"
            " p.phone_masked, p.registered_ms, d.reason, d.at_ms"
            " FROM participants p LEFT JOIN disqualifications d USING (participant_id) WHERE p.participant_id = %s",
            (participant_id,))
        row = await cur.fetchone()
    return None if row is None else Registration(*row)


async def entries_of(pool: Pool, participant_id: str, periods: Sequence[int]) -> list[EntryRow]:
    """Every entry the participant sent, scored as the key stands now, oldest first."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT period, attempt_id, submission_id, unit_code, score, correct, questions, duration_ms, prediction,"
            " submitted_ms FROM entries WHERE period = ANY(%s) AND participant_id = %s ORDER BY submitted_ms, attempt_id",
            (list(periods), participant_id))
        return [EntryRow(*row) for row in await cur.fetchall()]


async def answer_sheets(pool: Pool, question_id: str) -> AsyncIterator[tuple[int, dict[str, str], bool]]:
    """Every entry that drew the question: (period, its answers, its participant disqualified), streamed."""
    async with connection(pool) as conn, conn.transaction(), conn.cursor(name="answer_sheets") as cur:
        await cur.execute("SELECT period, answers, NOT " + NOT_DISQUALIFIED.format(t="e") +
                          " FROM entries e WHERE %s = ANY(question_ids)", (question_id,))
        async for period, answers, disqualified in cur:
            yield int(period), _answers.decode(answers), bool(disqualified)


class Reminder(msgspec.Struct, frozen=True):
    """Someone registered to a unit who has not taken part: a name and a masked phone, nothing more."""

    participant_id: str
    display_name: str
    unit_code: str
    phone_masked: str


async def not_taken_part(pool: Pool, units: Sequence[str], groups: Sequence[str], period: int | None
                         ) -> list[Reminder]:
    """Participants of `groups` now in one of `units` without an entry in the period (or in any period),
    not disqualified: whom a unit reminds."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT participant_id, display_name, unit, phone_masked FROM (SELECT p.participant_id, p.display_name,"
            " p.phone_masked, coalesce((SELECT m.unit_code FROM unit_moves m WHERE m.participant_id = p.participant_id"
            "  ORDER BY m.ev_ms DESC, m.ev_seq DESC, m.ev_part DESC, m.ev_idx DESC LIMIT 1), p.unit_code) AS unit"
            " FROM participants p WHERE p.group_code = ANY(%(groups)s) AND " + NOT_DISQUALIFIED.format(t="p") + ") q"
            " WHERE unit = ANY(%(units)s) AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.participant_id ="
            " q.participant_id AND (%(period)s::int IS NULL OR e.period = %(period)s))"
            " ORDER BY unit, display_name, participant_id",
            {"units": list(units), "groups": list(groups), "period": period})
        return [Reminder(*row) for row in await cur.fetchall()]


async def period_counts(pool: Pool) -> tuple[dict[int, int], dict[tuple[int, str], int]]:
    """Valid entries per period and participants with one per period and group, of participants not
    disqualified: through the entries' (period, participant) index and the counted entries (one a participant),
    never a pass over the entries themselves (3 M of them at 1 M participants). The participants are the public
    projection's: during a freeze, those with an entry before it (DESIGN §3)."""
    async with connection(pool) as conn:
        cur = await conn.execute(f"SELECT period, count(*) FROM entries e WHERE {NOT_DISQUALIFIED.format(t='e')}"
                                 " GROUP BY period")
        entries = {int(p): int(n) for p, n in await cur.fetchall()}
        cur = await conn.execute(f"SELECT period, group_code, count(*) FROM counted c"
                                 f" WHERE {NOT_DISQUALIFIED.format(t='c')} GROUP BY period, group_code")
        people = {(int(p), str(g)): int(n) for p, g, n in await cur.fetchall()}
    return entries, people
