"""Project freshly archived events into the ranking tables (the one path for live and replay)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import psycopg

from contest.model import Contest
from contest.scoring import count_correct, score
from eventstore.events import (
    AnswerKeyCorrected,
    AnyEvent,
    ParticipantDisqualified,
    ParticipantRegistered,
    SubmissionReceived,
)
from eventstore.postgres import EventKey

_msgpack = msgspec.msgpack.Encoder()
_answers_decoder = msgspec.msgpack.Decoder(dict[str, str])


def decode_answers(stored: bytes) -> dict[str, str]:
    """An entry's answers as the entries table stores them (msgpack)."""
    return _answers_decoder.decode(stored)
KEY_LOCK = 7264  # advisory lock: batches hold it shared, an answer-key correction exclusively

# The order that picks the counted entry among a participant's entries of a period.
SELECTION_ORDER = {
    "best": "score DESC, duration_ms, submitted_ms, attempt_id",
    "first": "submitted_ms, attempt_id",
    "last": "submitted_ms DESC, attempt_id DESC",
}
# The live counted entry: replace the held one only when the new one comes first in that order.
_BETTER = {
    "best": "(-excluded.score, excluded.duration_ms, excluded.submitted_ms, excluded.attempt_id)"
            " < (-c.score, c.duration_ms, c.submitted_ms, c.attempt_id)",
    "first": "(excluded.submitted_ms, excluded.attempt_id) < (c.submitted_ms, c.attempt_id)",
    "last": "(excluded.submitted_ms, excluded.attempt_id) > (c.submitted_ms, c.attempt_id)",
}
_COUNTED_COLUMNS = ("period, participant_id, group_code, unit_code, attempt_id, score, correct, duration_ms,"
                    " prediction, submitted_ms")
_COUNTED_SET = (" group_code = excluded.group_code, unit_code = excluded.unit_code, attempt_id = excluded.attempt_id,"
                " score = excluded.score, correct = excluded.correct, duration_ms = excluded.duration_ms,"
                " prediction = excluded.prediction, submitted_ms = excluded.submitted_ms")


async def answer_key(conn: psycopg.AsyncConnection, contest: Contest, upto: EventKey | None = None) -> dict[str, str]:
    """The contest's key with the corrections archived so far (or up to event `upto`) applied in order."""
    key: dict[str, str] = {q.id: q.answer for q in contest.questions.values()}
    cur = await conn.execute(
        "SELECT question_id, answer FROM answer_key_corrections"
        " WHERE %s::bigint IS NULL OR (ev_ms, ev_seq, ev_idx) <= (%s, %s, %s) ORDER BY ev_ms, ev_seq, ev_idx",
        (None, 0, 0, 0) if upto is None else (upto[0], *upto))
    key.update(dict(await cur.fetchall()))
    return key


_STAGED_COLUMNS = ("attempt_id text, submission_id text, participant_id text, period int, group_code text,"
                   " unit_code text, score int, correct int, questions int, duration_ms bigint, prediction bigint,"
                   " submitted_ms bigint, question_ids text, answers bytea, ev_ms bigint, ev_seq bigint, ev_idx int")
_STAGED_TYPES = ["text", "text", "text", "int4", "text", "text", "int4", "int4", "int4", "int8", "int8", "int8",
                 "text", "bytea", "int8", "int8", "int4"]
QUESTION_SEPARATOR = "\x1f"  # joins an attempt's question ids into one array element (ids hold no control chars)


def _join(question_ids: Sequence[str]) -> str:
    return QUESTION_SEPARATOR.join(question_ids)


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows → one list per column, for unnest()."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


class Projector:
    """Applies events to the projection tables inside the caller's transaction."""

    def __init__(self, contest: Contest) -> None:
        self.contest = contest
        selection = contest.rules.attempt_selection
        self._upsert_counted = (
            f"INSERT INTO counted AS c ({_COUNTED_COLUMNS})"
            f" SELECT DISTINCT ON (period, participant_id) {_COUNTED_COLUMNS} FROM staged_entries"
            f" ORDER BY period, participant_id, {SELECTION_ORDER[selection]}"
            f" ON CONFLICT (period, participant_id) DO UPDATE SET {_COUNTED_SET} WHERE {_BETTER[selection]}")
        self._recount = (
            f"INSERT INTO counted AS c ({_COUNTED_COLUMNS})"
            f" SELECT DISTINCT ON (period, participant_id) {_COUNTED_COLUMNS} FROM entries"
            " WHERE attempt_id = ANY(%s) OR (period, participant_id) IN"
            "  (SELECT period, participant_id FROM entries WHERE attempt_id = ANY(%s))"
            f" ORDER BY period, participant_id, {SELECTION_ORDER[selection]}"
            f" ON CONFLICT (period, participant_id) DO UPDATE SET {_COUNTED_SET}")

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[tuple[EventKey, AnyEvent]]) -> None:
        corrections = [(k, e) for k, e in events if isinstance(e, AnswerKeyCorrected)]
        if corrections:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (KEY_LOCK,))
        else:
            await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (KEY_LOCK,))
        # Events apply in key order, but a batch groups them by kind: only a correction's
        # position matters (entries scored before it are rescored by it), so split there.
        start = 0
        for i, (key, event) in enumerate(events):
            if isinstance(event, AnswerKeyCorrected):
                await self._apply_plain(conn, events[start:i])
                await self._correct(conn, key, event)
                start = i + 1
        await self._apply_plain(conn, events[start:])

    async def _apply_plain(self, conn: psycopg.AsyncConnection, events: Sequence[tuple[EventKey, AnyEvent]]) -> None:
        """Set-based: one statement per table for the whole batch (arrays unnested server-side).
        Attempt starts project nothing: the event table keeps them."""
        registered = [e for _, e in events if isinstance(e, ParticipantRegistered)]
        submitted = [(k, e) for k, e in events if isinstance(e, SubmissionReceived)]
        disqualified = [(k, e) for k, e in events if isinstance(e, ParticipantDisqualified)]
        if registered:
            await conn.execute(
                "INSERT INTO participants (participant_id, group_code, unit_code, display_name, phone_masked,"
                " id_hash, phone_hash, pii, registered_ms) SELECT * FROM unnest(%b::text[], %b::text[], %b::text[],"
                " %b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[], %b::bigint[]) ON CONFLICT DO NOTHING",
                _columns([(e.participant_id, e.group, e.unit_code, e.display_name, e.phone_masked, e.id_hash,
                           e.phone_hash, e.pii, e.registered_ms) for e in registered], 9))
        if submitted:
            await self._submissions(conn, submitted)
        if disqualified:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO disqualifications (participant_id, reason, at_ms, ev_ms, ev_seq, ev_idx)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(e.participant_id, e.reason, e.at_ms, *k) for k, e in disqualified])

    async def _submissions(self, conn: psycopg.AsyncConnection,
                           events: list[tuple[EventKey, SubmissionReceived]]) -> None:
        key = await answer_key(conn, self.contest)
        points = self.contest.rules.points_per_correct
        rows = []
        for ev, e in events:
            correct = count_correct(e.question_ids, e.answers, key)
            rows.append((e.attempt_id, e.submission_id, e.participant_id, e.period, e.group, e.unit_code,
                         score(correct, points), correct, len(e.question_ids), e.received_ms - e.started_ms,
                         e.prediction, e.received_ms, _join(e.question_ids), _msgpack.encode(e.answers), *ev))
        # COPY (formatted in C) into a per-session staging table; then entries and counted entries
        # are each one set-based statement over it.
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS staged_entries ({_STAGED_COLUMNS}) ON COMMIT DELETE ROWS")
        async with conn.cursor() as cur, cur.copy("COPY staged_entries FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_STAGED_TYPES)
            for row in rows:
                await copy.write_row(row)
        await conn.execute(
            "INSERT INTO entries (attempt_id, submission_id, participant_id, period, group_code, unit_code, score,"
            " correct, questions, duration_ms, prediction, submitted_ms, question_ids, answers, ev_ms, ev_seq, ev_idx)"
            " SELECT attempt_id, submission_id, participant_id, period, group_code, unit_code, score, correct,"
            " questions, duration_ms, prediction, submitted_ms, string_to_array(question_ids, E'\\x1f'), answers,"
            " ev_ms, ev_seq, ev_idx FROM staged_entries ON CONFLICT DO NOTHING")
        # One candidate per participant and period (a statement may not update a row twice), then
        # the held counted entry is replaced only by a better one.
        # Emptied at once: ON COMMIT DELETE ROWS is too late when one transaction applies several
        # segments (split at corrections), and a later one must not see earlier, stale rows.
        await conn.execute(self._upsert_counted + "; DELETE FROM staged_entries")

    async def _correct(self, conn: psycopg.AsyncConnection, key: EventKey, event: AnswerKeyCorrected) -> None:
        """Record the correction, rescore every entry with that question, re-pick their counted entries."""
        await conn.execute(
            "INSERT INTO answer_key_corrections (ev_ms, ev_seq, ev_idx, question_id, answer, at_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (*key, event.question_id, event.answer,
                                                                         event.at_ms))
        answers = await answer_key(conn, self.contest)
        cur = await conn.execute("SELECT attempt_id, question_ids, answers FROM entries WHERE %s = ANY(question_ids)",
                                 (event.question_id,))
        points = self.contest.rules.points_per_correct
        rescored = [(score(c, points), c, attempt_id) for attempt_id, questions, given in await cur.fetchall()
                    for c in [count_correct(questions, decode_answers(given), answers)]]
        if not rescored:
            return
        async with conn.cursor() as c:
            await c.executemany("UPDATE entries SET score = %s, correct = %s WHERE attempt_id = %s", rescored)
        ids = [r[2] for r in rescored]
        await conn.execute(self._recount, (ids, ids))
