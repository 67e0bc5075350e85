"""The live read model's SQL (participants, entries, counted entries, corrections), typed rows out.

Its writes are the projector's (inside the scorer's transaction), its reads the results API's,
the rank snapshot's, the monitor's and a close's. The ranking orders are derived from
`contest.ranking`, never written here a second time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import msgspec
from psycopg.rows import class_row

from contest.closing import PeriodFacts
from contest.closing import period_facts as closing_facts
from contest.flags import Submitted
from contest.identity import ERASED_NAME
from contest.model import Contest, PredictionTarget
from contest.ranking import FINAL_ORDER, PROVISIONAL_ORDER, SELECTION_ORDERS, Entry, Order
from contest.scoring import count_correct, score
from contest.units import UnitAggregate
from eventstore.barrier import Barrier, EventKey, sql_within
from eventstore.events import ParticipantDisqualified, ParticipantMoved, ParticipantRegistered, SubmissionReceived
from eventstore.postgres import Connection, Pool, connection, copy_rows

NOT_DISQUALIFIED = "NOT EXISTS (SELECT 1 FROM disqualifications d WHERE d.participant_id = {t}.participant_id)"
# The public reads of a period not yet closed: disqualified by an event made before its cutoff (`before`: its
# freeze's start, or NEVER); one made later shows at the close (DESIGN §3).
DISQUALIFIED_BEFORE = ("EXISTS (SELECT 1 FROM disqualifications d WHERE d.participant_id = {t}.participant_id"
                       " AND d.at_ms < {before})")
NEVER = 2**63 - 1  # a time no event reaches (bigint's maximum): a period without a freeze
TABLES = ("participants", "disqualifications", "answer_key_corrections", "unit_moves", "entries", "counted")
QUESTION_SEPARATOR = "\x1f"  # joins an attempt's question ids into one array element (ids hold no control chars)


# -- the ranking order in SQL -------------------------------------------------------------------

def order_by(order: Order, alias: str = "") -> str:
    """`order` as an ORDER BY list."""
    return ", ".join(f"{alias}{name}{' DESC' if desc else ''}" for name, desc in order)


def precedes(order: Order, left: str, right: str) -> str:
    """A condition true when row `left` comes before row `right` in `order` (lexicographic);
    `right` may be `%(...)s`-style named parameters when it is the string '%'."""

    def col(side: str, name: str) -> str:
        return f"%({name})s" if side == "%" else f"{side}.{name}"

    terms = []
    for i, (name, desc) in enumerate(order):
        same = [f"{col(left, n)} = {col(right, n)}" for n, _ in order[:i]]
        terms.append(" AND ".join([*same, f"{col(left, name)} {'>' if desc else '<'} {col(right, name)}"]))
    return "(" + " OR ".join(f"({t})" for t in terms) + ")"


def public_cutoffs(contest: Contest) -> dict[int, int]:
    """period → the time from which its events (an entry received, a correction or disqualification made)
    no longer change its public projections until its close: its freeze's start (DESIGN §3). A period
    without a freeze is left out: its cutoff is NEVER."""
    return {p.number: at for p in contest.periods if (at := contest.frozen_at(p)) is not None}


def _valid_before(table: str, before: str = "%(before)s") -> str:
    """Rows of `table` whose participant was not disqualified by an event made before `before` (SQL)."""
    return "NOT " + DISQUALIFIED_BEFORE.format(t=table, before=before)


def cutoff_sql(cutoffs: dict[int, int], period: str) -> str:
    """The cutoff of the period in column `period`, as SQL (literals: the contest's own numbers)."""
    if not cutoffs:
        return str(NEVER)
    return f"CASE {period}{''.join(f' WHEN {int(n)} THEN {int(ms)}' for n, ms in sorted(cutoffs.items()))}" \
           f" ELSE {NEVER} END"


# -- typed rows ---------------------------------------------------------------------------------

class Standing(msgspec.Struct, frozen=True):
    """A counted entry as a leaderboard shows it: live (rank and prediction_error unknown) or final."""

    participant_id: str
    group_code: str
    unit_code: str | None
    attempt_id: str
    score: int
    correct: int
    duration_ms: int
    prediction: int
    submitted_ms: int
    display_name: str | None
    rank: int | None = None
    prediction_error: int | None = None
    phone_masked: str | None = None


class ParticipantRow(msgspec.Struct, frozen=True):
    participant_id: str
    group_code: str
    display_name: str
    unit_code: str | None
    disqualified: bool


class AttemptRow(msgspec.Struct, frozen=True):
    attempt_id: str
    score: int
    correct: int
    duration_ms: int
    prediction: int
    submitted_ms: int


class PersonInPeriod(msgspec.Struct, frozen=True):
    """A participant, their live counted entry of a period (if any) and every entry they sent in it."""

    person: ParticipantRow
    counted: Standing | None
    attempts: list[AttemptRow]


class PeriodCount(msgspec.Struct, frozen=True):
    period: int
    group_code: str
    entries: int
    participants: int


_COUNTED = ("period, participant_id, group_code, unit_code, attempt_id, score, correct, duration_ms,"
            " prediction, submitted_ms")
# An attempt as the public sees it: while its period is frozen (%(public)s), scored as at the freeze.
_ATTEMPT = ("e.attempt_id, CASE WHEN %(public)s AND e.frozen_correct IS NOT NULL THEN e.frozen_correct * %(points)s"
            " ELSE e.score END AS score, CASE WHEN %(public)s AND e.frozen_correct IS NOT NULL THEN e.frozen_correct"
            " ELSE e.correct END AS correct, e.duration_ms, e.prediction, e.submitted_ms")  # no ", " inside a column
_PERSON = ("p.participant_id, p.group_code, p.display_name, p.unit_code, "
           + DISQUALIFIED_BEFORE.format(t="p", before="%(before)s") + " AS disqualified")
_STANDING = ("c.participant_id, c.group_code, c.unit_code, c.attempt_id, c.score, c.correct, c.duration_ms,"
             " c.prediction, c.submitted_ms, p.display_name")


def _json_object(columns: str) -> str:
    """`c.x, f(y) AS z` as json_build_object('x', c.x, 'z', f(y)): a row as one JSON value."""
    pairs = []
    for column in columns.split(", "):
        expression, _, alias = column.partition(" AS ")
        pairs.append(f"'{alias or expression.split('.')[-1]}', {expression}")
    return f"json_build_object({', '.join(pairs)})"


# A participant, their counted entry and their entries of a period, as three JSON values: the standing read.
# The entries are sorted in a subquery by what the index entries_participant_sent holds, so the planner walks
# that index even while the period's partition has no statistics: a plan cached then (every pooled connection
# prepares this read) had taken the key (period, attempt_id) and read the whole period per standing.
PERSON_IN_PERIOD = (
    f"SELECT {_json_object(_PERSON)},"
    f" (SELECT {_json_object(_STANDING)} FROM counted c"
    "   WHERE c.period = %(period)s AND c.participant_id = p.participant_id),"
    f" (SELECT coalesce(json_agg(a ORDER BY submitted_ms, attempt_id), '[]') FROM (SELECT"
    f"   {_json_object(_ATTEMPT)} AS a, e.submitted_ms, e.attempt_id FROM entries e"
    "   WHERE e.period = %(period)s AND e.participant_id = p.participant_id AND e.submitted_ms < %(before)s"
    "   ORDER BY e.submitted_ms, e.attempt_id) sent)"
    " FROM participants p WHERE p.participant_id = %(pid)s")


class LiveQueries:
    """Reads of the live read model; every driver error leaves as a StoreError."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def _rows(self, kind: type[Any], sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        async with connection(self.pool) as conn, conn.cursor(row_factory=class_row(kind)) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def _count(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
        async with connection(self.pool) as conn:
            row = await (await conn.execute(sql, params)).fetchone()
            return int(row[0]) if row else 0

    # The live reads below are the public ones of a period not yet closed: `before` is its cutoff
    # (public_cutoffs: its freeze's start, or NEVER). `counted` already holds only what was received
    # before it; disqualifications are counted up to it.

    async def live_total(self, period: int, group: str, before: int = NEVER) -> int:
        return await self._count(f"SELECT count(*) FROM counted c WHERE c.period = %(period)s"
                                 f" AND c.group_code = %(group)s AND {_valid_before('c')}",
                                 {"period": period, "group": group, "before": before})

    async def live_leaderboard(self, period: int, group: str, limit: int, offset: int, before: int = NEVER
                               ) -> list[Standing]:
        async with connection(self.pool) as conn, conn.cursor(row_factory=class_row(Standing)) as cur:
            await cur.execute(
                f"SELECT {_STANDING} FROM counted c LEFT JOIN participants p USING (participant_id)"
                f" WHERE c.period = %(period)s AND c.group_code = %(group)s AND {_valid_before('c')}"
                f" ORDER BY {order_by(PROVISIONAL_ORDER, 'c.')} LIMIT %(limit)s OFFSET %(offset)s",
                {"period": period, "group": group, "limit": limit, "offset": offset, "before": before})
            return await _in_units_before(conn, await cur.fetchall(), before)

    async def person_in_period(self, period: int, participant_id: str, *, before: int | None,
                               points: int) -> PersonInPeriod | None:
        """A participant, their live counted entry of the period and every entry they sent in it, in one
        round trip (a results page's hottest read): each part one JSON value, decoded by msgspec. With a
        `before` (a period not closed), the entries received before it, scored as the public sees them
        (`points` a correct answer); with None (a closed period), every entry as scored now."""
        async with connection(self.pool) as conn:
            cur = await conn.execute(
                PERSON_IN_PERIOD,
                {"period": period, "pid": participant_id, "before": NEVER if before is None else before,
                 "public": before is not None, "points": points})
            row = await cur.fetchone()
            if row is None:
                return None
            person, counted, attempts = row
            standing = None if counted is None else msgspec.convert(counted, Standing)
            if standing is not None and before is not None:
                standing = (await _in_units_before(conn, [standing], before))[0]
        return PersonInPeriod(msgspec.convert(person, ParticipantRow), standing,
                              msgspec.convert(attempts, list[AttemptRow]))

    async def live_counted(self, period: int, participant_id: str) -> Standing | None:
        rows = await self._rows(
            Standing, f"SELECT {_STANDING} FROM counted c LEFT JOIN participants p USING (participant_id)"
            " WHERE c.period = %s AND c.participant_id = %s", (period, participant_id))
        return rows[0] if rows else None

    async def live_rank(self, period: int, me: Standing, before: int = NEVER) -> int:
        """1 + the counted entries before `me` in the provisional order: O(rank), see rank_cache."""
        return 1 + await self._count(
            f"SELECT count(*) FROM counted c WHERE c.period = %(period)s AND c.group_code = %(group_code)s"
            f" AND {_valid_before('c')} AND {precedes(PROVISIONAL_ORDER, 'c', '%')}",
            {**msgspec.structs.asdict(me), "period": period, "before": before})

    async def count_same_key_before(self, period: int, group: str, score: int, duration_ms: int, submitted_ms: int,
                                    attempt_id: str, before: int = NEVER) -> int:
        """Counted entries equal to this one but for a smaller attempt id (the last tie-break)."""
        return await self._count(
            "SELECT count(*) FROM counted c WHERE c.period = %(period)s AND c.group_code = %(group)s"
            " AND c.score = %(score)s AND c.duration_ms = %(duration_ms)s AND c.submitted_ms = %(submitted_ms)s"
            f" AND c.attempt_id < %(attempt_id)s AND {_valid_before('c')}",
            {"period": period, "group": group, "score": score, "duration_ms": duration_ms,
             "submitted_ms": submitted_ms, "attempt_id": attempt_id, "before": before})

    async def packed_keys(self, period: int, group: str, *, max_score: int, score_shift: int, duration_cap: int,
                          time_shift: int, start_ms: int, span_ms: int, before: int = NEVER) -> bytes:
        """The provisional keys of a ranking packed into big-endian 8-byte integers, in order (see
        rank_cache): one string for the whole ranking, no Python object per row."""
        async with connection(self.pool) as conn:
            cur = await conn.execute(
                "SELECT coalesce(string_agg(int8send(k), ''::bytea ORDER BY k), ''::bytea) FROM ("
                " SELECT ((%(max_score)s - score)::bigint << %(score_shift)s)"
                "   | (least(duration_ms, %(duration_cap)s)::bigint << %(time_shift)s)"
                "   | least(greatest(submitted_ms - %(start_ms)s, 0), %(span_ms)s) AS k"
                " FROM counted c WHERE c.period = %(period)s AND c.group_code = %(group)s"
                f" AND {_valid_before('c')}) t",
                {"max_score": max_score, "score_shift": score_shift, "duration_cap": duration_cap,
                 "time_shift": time_shift, "start_ms": start_ms, "span_ms": span_ms, "period": period,
                 "group": group, "before": before})
            row = await cur.fetchone()
            return bytes(row[0]) if row else b""

    async def live_unit_aggregates(self, period: int, groups: Sequence[str], before: int = NEVER
                                   ) -> list[UnitAggregate]:
        async with connection(self.pool) as conn:
            # Frozen: a participant moved at or after the cutoff counts in the unit they were in before it (§3).
            units = await UnitsAt.before(conn, {period: before} if before != NEVER else {})
            params = {"period": period, "groups": list(groups), "before": before, **units.params()}
            counted = await (await conn.execute(
                f"SELECT {units.unit('c')} AS unit, count(*), sum(c.score) FROM counted c{units.join('c')}"
                " WHERE c.period = %(period)s AND c.group_code = ANY(%(groups)s)"
                f" AND {units.unit('c')} IS NOT NULL AND {_valid_before('c')} GROUP BY 1", params)).fetchall()
            entries = await (await conn.execute(
                f"SELECT {units.unit()} AS unit, count(*) FROM entries e{units.join()} WHERE e.period = %(period)s"
                " AND e.group_code = ANY(%(groups)s) AND e.submitted_ms < %(before)s"
                f" AND {units.unit()} IS NOT NULL AND {_valid_before('e')} GROUP BY 1", params)).fetchall()
        n_entries = dict(entries)
        found = [UnitAggregate(code, people, int(total), people, n_entries.pop(code, 0)) for code, people, total in counted]
        return found + [UnitAggregate(code, 0, 0, 0, n) for code, n in n_entries.items()]

    async def participants_per_unit(self, period: int | None, groups: Sequence[str],
                                    cutoffs: dict[int, int] | None = None) -> dict[str, int]:
        """unit_code → distinct participants of `groups` with an entry (of one period, or of any), not
        disqualified: the participation report's count, before rolling up the unit tree. A moved participant
        counts in each closed period's unit at its close (DESIGN §3), in an open one's unit of now. With `cutoffs`
        (the public's: period → cutoff, for the periods not closed), an entry counts only when received
        before its period's cutoff, and a disqualification only when made before it (DESIGN §3)."""
        cutoff = cutoff_sql(cutoffs or {}, "e.period")
        async with connection(self.pool) as conn:
            units = await UnitsAt.reported(conn, cutoffs or {}, period)  # moved: at a close, before a freeze
            cur = await conn.execute(
                f"SELECT {units.unit()} AS unit, count(DISTINCT e.participant_id) FROM entries e{units.join()}"
                " WHERE e.group_code = ANY(%(groups)s) AND (%(period)s::int IS NULL OR e.period = %(period)s)"
                f" AND e.submitted_ms < {cutoff} AND {_valid_before('e', cutoff)} AND {units.unit()} IS NOT NULL"
                " GROUP BY 1", {"groups": list(groups), "period": period, **units.params()})
            return {code: int(n) for code, n in await cur.fetchall()}

    async def answered_questions(self, period: int | None, upper_size: Callable[[int], int]
                                 ) -> AsyncIterator[tuple[list[str], dict[str, str], bool]]:
        """Every entry (of one period, or of all) of a participant not disqualified, as (question ids,
        answers, in the upper group): the upper group is the best `upper_size(count)` entries by score,
        ties at its lowest score included. Streamed with a server-side cursor (a committee action)."""
        where = f"(%(period)s::int IS NULL OR period = %(period)s) AND {NOT_DISQUALIFIED.format(t='e')}"
        params = {"period": period}
        async with connection(self.pool) as conn, conn.transaction():
            row = await (await conn.execute(f"SELECT count(*) FROM entries e WHERE {where}", params)).fetchone()
            size = upper_size(int(row[0]) if row else 0)
            if size == 0:
                return
            row = await (await conn.execute(f"SELECT score FROM entries e WHERE {where} ORDER BY score DESC"
                                            " OFFSET %(skip)s LIMIT 1", {**params, "skip": size - 1})).fetchone()
            threshold = int(row[0]) if row else 0
            async with conn.cursor(name="answered_questions") as cur:
                await cur.execute(f"SELECT question_ids, answers, score >= %(threshold)s FROM entries e WHERE {where}",
                                  {**params, "threshold": threshold})
                async for question_ids, answers, top in cur:
                    yield question_ids, _answers_decoder.decode(answers), top

    async def current_key(self, contest: Contest) -> dict[str, str]:
        """The answer key with every correction archived so far."""
        async with connection(self.pool) as conn:
            return await answer_key(conn, contest)

    async def period_counts(self, periods: list[int]) -> list[PeriodCount]:
        """Valid entries and distinct participants per period and group, of `periods` (their partitions only)."""
        return await self._rows(
            PeriodCount, "SELECT period, group_code, count(*) AS entries, count(DISTINCT participant_id) AS participants"
            f" FROM entries e WHERE e.period = ANY(%s) AND {NOT_DISQUALIFIED.format(t='e')} GROUP BY period, group_code",
            (periods,))

    async def period_submissions(self, period: int) -> list[Submitted]:
        """Every entry of the period with what the flags look at, into Python (the tests' oracle for the flags
        the database computes: projections.desk_queries.flag_cases)."""
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT attempt_id, participant_id, duration_ms, answers, prediction FROM entries"
                                     " WHERE period = %s ORDER BY submitted_ms, attempt_id", (period,))
            return [Submitted(a, p, d, _answers_decoder.decode(given), pred)
                    for a, p, d, given, pred in await cur.fetchall()]

    async def registrations_per_address(self, participant_ids: list[str]) -> dict[str, int]:
        """participant_id → how many registrations came from its address (unknown address: left out)."""
        async with connection(self.pool) as conn:
            cur = await conn.execute(
                "SELECT p.participant_id, n FROM participants p JOIN (SELECT address_hash, count(*) AS n"
                " FROM participants WHERE address_hash <> '' GROUP BY address_hash) a USING (address_hash)"
                " WHERE p.participant_id = ANY(%s)", (participant_ids,))
            return dict(await cur.fetchall())


# -- writes: the projector's, on the scorer's connection (inside its transaction) ----------------

Staged = tuple[tuple[str, str], ...]  # a staging table's (column, PostgreSQL type), in COPY order

_STAGED_ENTRIES: Staged = (
    ("attempt_id", "text"), ("submission_id", "text"), ("participant_id", "text"), ("period", "int4"),
    ("group_code", "text"), ("unit_code", "text"), ("score", "int4"), ("correct", "int4"), ("questions", "int4"),
    ("duration_ms", "int8"), ("prediction", "int8"), ("submitted_ms", "int8"),
    ("question_ids", "text"),  # joined by QUESTION_SEPARATOR: split into entries' text[] by the insert
    ("answers", "bytea"), ("ev_ms", "int8"), ("ev_seq", "int8"), ("ev_part", "int2"), ("ev_idx", "int4"))
_STAGED_PARTICIPANTS: Staged = (
    ("participant_id", "text"), ("group_code", "text"), ("unit_code", "text"), ("display_name", "text"),
    ("phone_masked", "text"), ("id_hash", "text"), ("phone_hash", "text"), ("pii", "bytea"),
    ("registered_ms", "int8"), ("address_hash", "text"))
EMPTY_SHEET = b"\x80"  # msgpack of {}: an empty answer sheet, which copies nothing
# entries.sheet (projections/schema.sql): the answer sheet and prediction hashed, in C, as an entry is stored.
SHEET_SQL = ("CASE WHEN answers = '\\x80'::bytea THEN NULL"
             " ELSE hashtextextended(encode(answers, 'base64'), prediction) END")
_INSERT_ENTRIES = (
    f"INSERT INTO entries ({', '.join(name for name, _ in _STAGED_ENTRIES)}, sheet) SELECT "
    + ", ".join("string_to_array(question_ids, E'\\x1f')" if name == "question_ids" else name
                for name, _ in _STAGED_ENTRIES)
    + f", {SHEET_SQL} FROM staged_entries ON CONFLICT DO NOTHING")
_PARTICIPANT_COLUMNS = ", ".join(name for name, _ in _STAGED_PARTICIPANTS)
_EVENT_ORDER_DESC = "ev_ms DESC, ev_seq DESC, ev_part DESC, ev_idx DESC"
# A participant's unit now: their latest move in the event order (DESIGN §3 "Corrections"), else the unit the
# event names. Moves are rare: against an empty unit_moves this costs a batch nothing measurable.
_CURRENT_UNITS = ("SELECT DISTINCT ON (participant_id) participant_id, unit_code FROM unit_moves"
                  " WHERE participant_id IN ({who}) ORDER BY participant_id, " + _EVENT_ORDER_DESC)
_RESTAMP_STAGED = ("UPDATE staged_entries s SET unit_code = m.unit_code FROM ("
                   + _CURRENT_UNITS.format(who="SELECT participant_id FROM staged_entries") + ") m"
                   " WHERE s.participant_id = m.participant_id")
_COUNTED_SET = ", ".join(f"{c} = excluded.{c}" for c in ("group_code", "unit_code", "attempt_id", "score", "correct",
                                                          "duration_ms", "prediction", "submitted_ms"))
# An entry's answers keyed in question order, whatever order the client sent them in: two identical answer
# sheets are identical bytes, which the flags compare in SQL (copied_entries) — 0.4 µs more an entry.
_msgpack = msgspec.msgpack.Encoder(order="deterministic")
_answers_decoder = msgspec.msgpack.Decoder(dict[str, str])


class CountedStatements:
    """The statements that keep `counted` — the public's counted entry per participant and period, in the
    contest's selection order — an upsert from the staged batch, and a recount after a rescore. It is a
    projection of the events timed before the period's cutoff (its freeze, DESIGN §3): entries received
    before it, scored with the key as corrected before it (`entries.frozen_correct` where a later
    correction changed them), so it stands still from the freeze to the close, live and in a replay."""

    def __init__(self, contest: Contest) -> None:
        order = SELECTION_ORDERS[contest.rules.attempt_selection]
        self.cutoffs = public_cutoffs(contest)
        public = f"submitted_ms < {cutoff_sql(self.cutoffs, 'period')}"
        pick = f"DISTINCT ON (period, participant_id) {_COUNTED}"
        self.upsert = (
            f"INSERT INTO counted AS c ({_COUNTED}) SELECT {pick} FROM staged_entries WHERE {public}"
            f" ORDER BY period, participant_id, {order_by(order)}"
            f" ON CONFLICT (period, participant_id) DO UPDATE SET {_COUNTED_SET} WHERE {precedes(order, 'excluded', 'c')}")
        as_public = _COUNTED.replace(
            "score, correct", f"CASE WHEN frozen_correct IS NULL THEN score ELSE frozen_correct"
            f" * {int(contest.rules.points_per_correct)} END AS score, coalesce(frozen_correct, correct) AS correct")
        self.recount = (
            f"INSERT INTO counted AS c ({_COUNTED}) SELECT {pick} FROM (SELECT {as_public} FROM entries"
            " WHERE (attempt_id = ANY(%s) OR (period, participant_id) IN"
            f"  (SELECT period, participant_id FROM entries WHERE attempt_id = ANY(%s))) AND {public}) e"
            f" ORDER BY period, participant_id, {order_by(order)}"
            f" ON CONFLICT (period, participant_id) DO UPDATE SET {_COUNTED_SET}")


async def _stage(conn: Connection, table: str, columns: Staged, rows: Iterable[Sequence[Any]]) -> None:
    """`rows` COPied (formatted in C) into this session's temporary `table`, made on first use. It is
    emptied at every commit: autovacuum never visits a temporary table, so rows only deleted would stay
    as dead pages every later batch scans, on a connection a scorer keeps for weeks. Its user deletes
    them too once used (one transaction may stage several segments, split at corrections)."""
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table}"
                       f" ({', '.join(f'{name} {kind}' for name, kind in columns)}) ON COMMIT DELETE ROWS")
    async with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in columns])
        await copy_rows(copy, rows)


# A registration's plain values come from the keyring (its personal copy, DESIGN §10), or from the event
# itself for one from before data keys; an erased participant's (a tombstone) are ERASED_NAME and nothing.
_PLAIN = ("display_name", "phone_masked", "id_hash", "phone_hash", "address_hash")


def _participant_value(name: str) -> str:
    if name == "pii":
        return "CASE WHEN k.erased_ms IS NOT NULL THEN ''::bytea ELSE s.pii END"
    if name not in _PLAIN:
        return f"s.{name}"
    erased = "%(erased)s" if name == "display_name" else "''"
    return f"CASE WHEN k.erased_ms IS NOT NULL THEN {erased} ELSE coalesce(k.{name}, s.{name}) END"


_PARTICIPANT_VALUES = ", ".join(_participant_value(name) for name, _ in _STAGED_PARTICIPANTS)


async def add_participants(conn: Connection, events: Sequence[ParticipantRegistered]) -> None:
    """Staged, then one insert, its plain values from the keyring (projections.personal_queries)."""
    await _stage(conn, "staged_participants", _STAGED_PARTICIPANTS, (
        (e.participant_id, e.group, e.unit_code, e.display_name, e.phone_masked, e.id_hash, e.phone_hash, e.pii,
         e.registered_ms, e.address_hash) for e in events))
    await conn.execute(f"INSERT INTO participants ({_PARTICIPANT_COLUMNS}) SELECT {_PARTICIPANT_VALUES}"
                       " FROM staged_participants s LEFT JOIN participant_personal k USING (participant_id)"
                       " ON CONFLICT DO NOTHING", {"erased": ERASED_NAME})
    await conn.execute("DELETE FROM staged_participants")


async def add_disqualifications(conn: Connection, events: Sequence[tuple[EventKey, ParticipantDisqualified]]) -> None:
    """Of two disqualifications of one person the earlier event wins, in whatever order scorers apply
    them: a close counts those up to its barrier, so the kept one must be the first in the event order."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO disqualifications AS d (participant_id, reason, at_ms, ev_ms, ev_seq, ev_part, ev_idx)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (participant_id) DO UPDATE"
            " SET reason = excluded.reason, at_ms = excluded.at_ms, ev_ms = excluded.ev_ms,"
            " ev_seq = excluded.ev_seq, ev_part = excluded.ev_part, ev_idx = excluded.ev_idx"
            " WHERE (excluded.ev_ms, excluded.ev_seq, excluded.ev_part, excluded.ev_idx)"
            "  < (d.ev_ms, d.ev_seq, d.ev_part, d.ev_idx)",
            [(e.participant_id, e.reason, e.at_ms, *k) for k, e in events])


async def add_moves(conn: Connection, periods: Sequence[int], events: Sequence[tuple[EventKey, ParticipantMoved]]
                    ) -> None:
    """Record the moves, then put each moved participant's entries and counted entries in their unit now
    (the latest move in the event order, whatever order scorers apply them in). The caller holds KEY_LOCK
    exclusively, so a batch of entries projected concurrently either committed before (and is re-stamped
    here) or starts after (and is stamped by _RESTAMP_STAGED): the read models of the periods not yet
    closed count them in their new unit; a result keeps the unit of its barrier (units_at)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO unit_moves (ev_ms, ev_seq, ev_part, ev_idx, participant_id, unit_code, at_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(*k, e.participant_id, e.unit_code, e.at_ms) for k, e in events])
    who = sorted({e.participant_id for _, e in events})
    current = _CURRENT_UNITS.format(who="SELECT unnest(%(who)s::text[])")
    for table in ("entries", "counted"):  # by (period, participant): both are keyed so
        await conn.execute(f"UPDATE {table} t SET unit_code = m.unit_code FROM ({current}) m"
                           " WHERE t.period = ANY(%(periods)s) AND t.participant_id = m.participant_id"
                           " AND t.unit_code IS DISTINCT FROM m.unit_code", {"who": who, "periods": list(periods)})


async def _in_units_before(conn: Connection, rows: list[Standing], before: int) -> list[Standing]:
    """Frozen rows (DESIGN §3) as they stood: a participant moved at or after `before` in the unit they were in
    before it. The few moved meanwhile are read apart (on the same connection), so the ranking's own read keeps
    its index; outside a freeze, nothing is read."""
    if before == NEVER or not rows:
        return rows
    moved = await units_before(conn, before, [r.participant_id for r in rows])
    return [msgspec.structs.replace(r, unit_code=moved[r.participant_id]) if r.participant_id in moved else r
            for r in rows]


def _unit_when(moves: str) -> str:
    """Participant p's unit as of the moves of unit_moves m that `moves` keeps (SQL over m): the latest of
    them, else the unit they registered in (participants.unit_code: a move leaves it)."""
    return (f"coalesce((SELECT m.unit_code FROM unit_moves m WHERE m.participant_id = p.participant_id AND {moves}"
            f" ORDER BY {_EVENT_ORDER_DESC.replace('ev_', 'm.ev_')} LIMIT 1), p.unit_code)")


async def units_at(conn: Connection, upto: Barrier) -> dict[str, str | None]:
    """participant → the unit they belonged to at `upto`, for every participant ever moved (the others are
    in the unit their entries carry): their latest move covered by the barrier, else their registration's
    unit. What a result counts them in (DESIGN §3: each period in the unit of its close)."""
    cur = await conn.execute(
        f"SELECT p.participant_id, {_unit_when(sql_within('m'))} FROM participants p"
        " WHERE p.participant_id IN (SELECT participant_id FROM unit_moves)", upto.sql_params())
    return dict(await cur.fetchall())


async def latest_barriers(conn: Connection) -> dict[int, Barrier]:
    """closed period → the barrier of its latest revision (the final counts each period's units there)."""
    cur = await conn.execute("SELECT DISTINCT ON (period) period, barrier FROM period_results"
                             " ORDER BY period, revision DESC")
    return {int(p): Barrier.parse(str(b)) for p, b in await cur.fetchall()}


async def units_before(conn: Connection, cutoff: int, participant_ids: Sequence[str] | None = None
                       ) -> dict[str, str | None]:
    """participant → the unit they were in before `cutoff` (a freeze's start), for those moved at or after it
    (of `participant_ids`, when given): what a frozen answer counts them in (DESIGN §3). Usually nobody."""
    cur = await conn.execute(
        f"SELECT p.participant_id, {_unit_when('m.at_ms < %(cutoff)s')} FROM participants p"
        " WHERE p.participant_id IN (SELECT participant_id FROM unit_moves WHERE at_ms >= %(cutoff)s)"
        " AND (%(ids)s::text[] IS NULL OR p.participant_id = ANY(%(ids)s))",
        {"cutoff": cutoff, "ids": None if participant_ids is None else list(participant_ids)})
    return dict(await cur.fetchall())


async def current_units(conn: Connection, participant_ids: Sequence[str]) -> dict[str, str]:
    """participant → their unit now, for those of `participant_ids` ever moved."""
    cur = await conn.execute(_CURRENT_UNITS.format(who="SELECT unnest(%(who)s::text[])"),
                             {"who": list(participant_ids)})
    return dict(await cur.fetchall())


async def add_entries(conn: Connection, counted: CountedStatements, contest: Contest, keys: AnswerKeys,
                      events: Sequence[tuple[EventKey, SubmissionReceived]]) -> None:
    """Score the submissions with the key as corrected so far and stage them; then entries and counted
    entries are each one set-based statement over the staged rows."""
    points = contest.rules.points_per_correct
    key = keys.now
    # Nearly always empty: the periods whose public scores predate a correction (one made at or after
    # their freeze). Their entries keep the score before it for the public (frozen_correct).
    stale = keys.stale(counted.cutoffs)
    before = [(was, e.period, e.attempt_id) for _, e in events if e.period in stale
              for was in (count_correct(e.question_ids, e.answers, stale[e.period]),)
              if was != count_correct(e.question_ids, e.answers, key)] if stale else []
    await _stage(conn, "staged_entries", _STAGED_ENTRIES, (
        (e.attempt_id, e.submission_id, e.participant_id, e.period, e.group, e.unit_code, score(correct, points),
         correct, len(e.question_ids), e.received_ms - e.started_ms, e.prediction, e.received_ms,
         QUESTION_SEPARATOR.join(e.question_ids), _msgpack.encode(e.answers), *ev)
        for ev, e in events for correct in (count_correct(e.question_ids, e.answers, key),)))
    await conn.execute(f"{_RESTAMP_STAGED}; {_INSERT_ENTRIES}")  # a moved participant's entries: their unit now
    if before:
        async with conn.cursor() as cur:
            await cur.executemany("UPDATE entries SET frozen_correct = %s WHERE period = %s AND attempt_id = %s",
                                  before)
            await cur.executemany("UPDATE staged_entries SET score = %s, correct = %s WHERE attempt_id = %s",
                                  [(score(was, points), was, attempt_id) for was, _, attempt_id in before])
    # One candidate per participant and period (a statement may not update a row twice), then the
    # held counted entry is replaced only by a better one.
    await conn.execute(counted.upsert + "; DELETE FROM staged_entries")


async def answer_key(conn: Connection, contest: Contest, upto: Barrier | None = None) -> dict[str, str]:
    """The contest's key with the corrections archived so far (or up to `upto`) applied in event order."""
    key: dict[str, str] = {q.id: q.answer for q in contest.questions.values()}
    within = "TRUE" if upto is None else sql_within("c")
    cur = await conn.execute(
        f"SELECT question_id, answer FROM answer_key_corrections c WHERE {within}"
        " ORDER BY ev_ms, ev_seq, ev_part, ev_idx", {} if upto is None else upto.sql_params())
    key.update(dict(await cur.fetchall()))
    return key


class AnswerKeys:
    """The answer key as corrected by every correction archived so far (`now`), and as it stood before a
    period's cutoff (`stale`): what the public's projections of a frozen period are scored with."""

    def __init__(self, contest: Contest, corrections: Sequence[tuple[str, str, int]]) -> None:
        self.base = {q.id: q.answer for q in contest.questions.values()}
        self.corrections = corrections  # (question, answer, at_ms) in event order
        self.now = {**self.base, **{question: answer for question, answer, _ in corrections}} if corrections \
            else self.base

    def stale(self, cutoffs: dict[int, int]) -> dict[int, dict[str, str]]:
        """period → the key before its cutoff, for the periods a correction came at or after the cutoff of."""
        stale = {}
        for period, cutoff in cutoffs.items():
            if any(at >= cutoff for _, _, at in self.corrections):
                stale[period] = {**self.base, **{q: a for q, a, at in self.corrections if at < cutoff}}
        return stale


async def answer_keys(conn: Connection, contest: Contest) -> AnswerKeys:
    cur = await conn.execute("SELECT question_id, answer, at_ms FROM answer_key_corrections"
                             " ORDER BY ev_ms, ev_seq, ev_part, ev_idx")
    return AnswerKeys(contest, await cur.fetchall())


async def add_correction(conn: Connection, key: EventKey, question_id: str, answer: str, at_ms: int) -> None:
    await conn.execute(
        "INSERT INTO answer_key_corrections (ev_ms, ev_seq, ev_part, ev_idx, question_id, answer, at_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (*key, question_id, answer, at_ms))


async def rescore(conn: Connection, counted: CountedStatements, contest: Contest, question_id: str) -> None:
    """Rescore every entry holding `question_id` with the key as corrected so far (and, in a period a
    correction came at or after the freeze of, as corrected before it: frozen_correct); re-pick their
    participants' counted entries."""
    keys = await answer_keys(conn, contest)
    stale = keys.stale(counted.cutoffs)
    cur = await conn.execute("SELECT period, attempt_id, question_ids, answers FROM entries"
                             " WHERE %s = ANY(question_ids)", (question_id,))
    points = contest.rules.points_per_correct
    rescored = []
    for period, attempt_id, questions, given in await cur.fetchall():
        answers = _answers_decoder.decode(given)
        correct = count_correct(questions, answers, keys.now)
        was = count_correct(questions, answers, stale[period]) if period in stale else correct
        rescored.append((score(correct, points), correct, None if was == correct else was, period, attempt_id))
    if not rescored:
        return
    async with conn.cursor() as c:  # by the primary key (period first: the table is partitioned by it)
        await c.executemany("UPDATE entries SET score = %s, correct = %s, frozen_correct = %s"
                            " WHERE period = %s AND attempt_id = %s", rescored)
    ids = [r[4] for r in rescored]
    await conn.execute(counted.recount, (ids, ids))


_ENTRY_COLUMNS = ("e.attempt_id, e.participant_id, e.group_code, {unit}, e.score, e.correct, e.questions,"
                  " e.duration_ms, e.prediction, e.submitted_ms")  # an Entry's fields, in order


class UnitsAt(msgspec.Struct, frozen=True):
    """How a result's queries read an entry's unit: the unit its entry carries (the participant's now),
    except for the participants moved (units_at): the unit of the result's barrier. `period` keys the
    overrides by period too (the final counts each period in the unit of that period's close). A frozen
    answer reads them so too, each period as before its cutoff (`before`)."""

    units: dict[tuple[int, str], str | None]

    @classmethod
    async def of(cls, conn: Connection, barriers: dict[int, Barrier]) -> UnitsAt:
        return cls({(period, pid): unit for period, barrier in barriers.items()
                    for pid, unit in (await units_at(conn, barrier)).items()})

    @classmethod
    async def before(cls, conn: Connection, cutoffs: dict[int, int]) -> UnitsAt:
        return cls({(period, pid): unit for period, cutoff in cutoffs.items()
                    for pid, unit in (await units_before(conn, cutoff)).items()})

    @classmethod
    async def as_closed(cls, conn: Connection) -> UnitsAt:
        """Each closed period in the units of its latest close (DESIGN §3: after a move, each period counts
        the participant in the unit they belonged to at its close)."""
        return await cls.of(conn, await latest_barriers(conn))

    @classmethod
    async def reported(cls, conn: Connection, cutoffs: dict[int, int], period: int | None = None) -> UnitsAt:
        """A report over one period or (None) all: each closed one as at its close, each frozen one (`cutoffs`,
        the public's) as before its freeze, the others in the units of now."""
        barriers = {n: b for n, b in (await latest_barriers(conn)).items() if period in (None, n)}
        closed = await cls.of(conn, barriers)
        frozen = await cls.before(conn, {n: c for n, c in cutoffs.items() if period in (None, n) and n not in barriers})
        return cls({**frozen.units, **closed.units})

    def join(self, t: str = "e") -> str:
        """FROM entries e {join()}: the overrides beside each row of `t` (nothing when nobody was moved)."""
        if not self.units:
            return ""
        return (" LEFT JOIN unnest(%(mv_periods)s::int[], %(mv_pids)s::text[], %(mv_units)s::text[])"
                f" AS mv(period, participant_id, unit_code) ON mv.period = {t}.period"
                f" AND mv.participant_id = {t}.participant_id")

    def unit(self, t: str = "e") -> str:
        """The row's unit, as a SQL expression over `t` and the join."""
        return f"CASE WHEN mv.participant_id IS NULL THEN {t}.unit_code ELSE mv.unit_code END" if self.units \
            else f"{t}.unit_code"

    def params(self) -> dict[str, Any]:
        keys = list(self.units)
        return {"mv_periods": [p for p, _ in keys], "mv_pids": [pid for _, pid in keys],
                "mv_units": [self.units[k] for k in keys]} if self.units else {}

    def entry(self, period: int, e: Entry) -> Entry:
        """An Entry read without the join, in its unit at the barrier."""
        key = (period, e.participant_id)
        return msgspec.structs.replace(e, unit_code=self.units[key]) if key in self.units else e
_VALID_UPTO = (
    # an entry archived up to the barrier, of a participant not disqualified by then, for an attempt the
    # server started (by then): what a close counts (valid_entries) and what the final units count
    f"{sql_within('e')}"
    " AND NOT EXISTS (SELECT 1 FROM disqualifications d"
    f"  WHERE d.participant_id = e.participant_id AND {sql_within('d')})"
    " AND EXISTS (SELECT 1 FROM events s WHERE s.kind = 'attempt_started' AND s.ref = e.attempt_id"
    f"  AND {sql_within('s', 'stream_ms', 'stream_seq', 'part')})")


async def valid_entries(conn: Connection, contest: Contest, period: int, upto: Barrier,
                        units: UnitsAt | None = None) -> list[Entry]:
    """The period's entries archived up to `upto` whose attempt the server started, of participants not
    disqualified by an event up to it, scored with the answer key as corrected up to it: nothing after
    the barrier leaks in. Each in its unit at `upto` (or as `units` says: the final's per-period units)."""
    units = units or await UnitsAt.of(conn, {period: upto})
    cur = await conn.execute(f"SELECT {_ENTRY_COLUMNS.format(unit='e.unit_code')} FROM entries e"
                             f" WHERE period = %(period)s AND {_VALID_UPTO}", {"period": period, **upto.sql_params()})
    entries = [units.entry(period, Entry(*row)) for row in await cur.fetchall()]
    if not await corrected_after(conn, upto):
        return entries  # the projected scores are the scores as of `upto`
    key = await answer_key(conn, contest, upto)
    cur = await conn.execute("SELECT attempt_id, question_ids, answers FROM entries WHERE period = %s", (period,))
    correct = {a: count_correct(q, _answers_decoder.decode(given), key) for a, q, given in await cur.fetchall()}
    points = contest.rules.points_per_correct
    return [msgspec.structs.replace(e, correct=correct[e.attempt_id], score=score(correct[e.attempt_id], points))
            for e in entries]


_C = ' COLLATE "C"'  # text ordered by code point, as Python orders str
_ACTUAL: dict[PredictionTarget, str] = {  # contest.ranking.actual_value's
    "entries": "count(*)", "participants": "count(DISTINCT e.participant_id)",
    "perfect_participants": "count(DISTINCT e.participant_id) FILTER (WHERE e.correct = e.questions)"}


def selection_sql(contest: Contest, order: Order | None = None, table: str = "e") -> str:
    """The contest's attempt selection once the actual value is known (%(actual)s), as an ORDER BY list
    over entries `table`: contest.ranking's order, text compared as Python compares it (COLLATE "C").
    `order`: another of contest.ranking's orders instead (FINAL_ORDER: the ranking's)."""
    rules = contest.rules
    if order is None:
        order = FINAL_ORDER if rules.attempt_selection == "best" else SELECTION_ORDERS[rules.attempt_selection]
    computed = {"over": f"({table}.prediction > %(actual)s)", "prediction_error": f"abs({table}.prediction - %(actual)s)"}
    terms = []
    for name, desc in order:
        if name == "over" and rules.prediction_mode != "not_over":
            continue  # always 0 (false) then
        column = computed.get(name, f"{table}.{name}") + (_C if name == "attempt_id" else "")
        terms.append(f"{column} DESC" if desc else column)
    return ", ".join(terms)


async def period_facts(conn: Connection, contest: Contest, period: int, upto: Barrier) -> PeriodFacts:
    """contest.closing.PeriodFacts of the period's valid entries up to `upto` (valid_entries' rule),
    computed by the database: a participant's counted entry chosen there, once the actual value is
    known, so a million participants' three million entries cross as one row each (BENCHMARKS). After
    an answer-key correction later than `upto`, every entry is rescored in Python instead."""
    units = await UnitsAt.of(conn, {period: upto})  # moved participants: in their unit at the barrier
    if await corrected_after(conn, upto):
        return closing_facts(contest, await valid_entries(conn, contest, period, upto, units))
    params: dict[str, Any] = {"period": period, **upto.sql_params(), **units.params()}
    unit_sql, source = units.unit(), f"entries e{units.join()}"
    # One pass: per group and unit the valid entries, and over all of them (the grand total's row,
    # GROUPING = 1) their number and the actual value.
    cur = await conn.execute(
        f"SELECT GROUPING(e.group_code, {unit_sql}), e.group_code, {unit_sql}, count(*),"
        f" {_ACTUAL[contest.rules.prediction_target]} FROM {source} WHERE e.period = %(period)s AND {_VALID_UPTO}"
        f" GROUP BY GROUPING SETS ((e.group_code, {unit_sql}), ())", params)
    counting = contest.counting_groups()
    unit_entries: dict[str, int] = {}
    entries = actual = 0
    for total, group, unit, n, target_count in await cur.fetchall():
        if total:
            entries, actual = n, target_count
        elif group in counting and unit:
            unit_entries[unit] = unit_entries.get(unit, 0) + n
    # In each group's ranking order: contest.ranking.rank's sort, which decides, then only checks it (a sort of
    # a million keys in Python: 4-5 s of the desk's CPU at a close, BENCHMARKS.md).
    cur = await conn.execute(
        f"SELECT * FROM (SELECT DISTINCT ON (e.participant_id) {_ENTRY_COLUMNS.format(unit=unit_sql)} FROM {source}"
        f" WHERE e.period = %(period)s AND {_VALID_UPTO} ORDER BY e.participant_id, {selection_sql(contest)}) c"
        f" ORDER BY c.group_code, {selection_sql(contest, FINAL_ORDER, 'c')}",
        {**params, "actual": actual})
    return PeriodFacts(actual, [Entry(*row) for row in await cur.fetchall()], unit_entries, entries)


async def corrected_after(conn: Connection, upto: Barrier) -> bool:
    """True when an answer-key correction was archived after `upto` (projected scores are newer than it)."""
    cur = await conn.execute(f"SELECT 1 FROM answer_key_corrections c WHERE ({sql_within('c')}) IS NOT TRUE"
                             " LIMIT 1", upto.sql_params())
    return await cur.fetchone() is not None


async def contest_unit_aggregates(conn: Connection, contest: Contest, upto: Barrier,
                                  units: UnitsAt | None = None) -> list[UnitAggregate]:
    """Over every period's valid entries up to `upto`: per unit, distinct participants, the sum and number
    of their counted scores (one per participant and period) and the valid entries. The projected scores
    are the scores as of `upto` unless corrected_after(upto). `units`: each moved participant's unit per
    period (the final counts each period in the unit of that period's close)."""
    units = units or UnitsAt({})
    order = SELECTION_ORDERS[contest.rules.attempt_selection]  # for "best" only the (maximal) score matters
    params = {"groups": sorted(contest.counting_groups()), **upto.sql_params(), **units.params()}
    cur = await conn.execute(
        f"WITH valid AS MATERIALIZED (SELECT * FROM (SELECT e.period, e.participant_id, {units.unit()} AS unit_code,"
        f"  e.score, e.duration_ms, e.submitted_ms, e.attempt_id FROM entries e{units.join()}"
        f"  WHERE e.group_code = ANY(%(groups)s) AND {_VALID_UPTO}) v WHERE v.unit_code IS NOT NULL),"
        " counted AS (SELECT DISTINCT ON (period, participant_id) participant_id, unit_code, score FROM valid"
        f"  ORDER BY period, participant_id, {order_by(order)}),"
        " people AS (SELECT unit_code, count(DISTINCT participant_id) AS n, sum(score) AS total, count(*) AS scores"
        "  FROM counted GROUP BY unit_code),"
        " sent AS (SELECT unit_code, count(*) AS n FROM valid GROUP BY unit_code)"
        " SELECT unit_code, coalesce(p.n, 0), coalesce(p.total, 0), coalesce(p.scores, 0), coalesce(s.n, 0)"
        " FROM people p FULL JOIN sent s USING (unit_code) ORDER BY unit_code", params)
    return [UnitAggregate(code, int(n), int(total), int(scores), int(sent))
            for code, n, total, scores, sent in await cur.fetchall()]


async def display_names(conn: Connection, participant_ids: list[str]) -> dict[str, str]:
    cur = await conn.execute("SELECT participant_id, display_name FROM participants"
                             " WHERE participant_id = ANY(%s)", (participant_ids,))
    return dict(await cur.fetchall())


async def empty(conn: Connection) -> None:
    """Every table of the live read model, emptied (a replay rebuilds them)."""
    await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
