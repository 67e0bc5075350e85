"""Project freshly archived events into the live read model (the one path for live and replay)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contest.model import Contest
from eventstore.barrier import EventKey
from eventstore.events import (
    AnswerKeyCorrected,
    AnyEvent,
    ParticipantDisqualified,
    ParticipantErased,
    ParticipantMoved,
    ParticipantRegistered,
    SubmissionReceived,
)
from eventstore.postgres import Connection, xact_lock
from projections import live_queries as q
from projections import personal_queries, results_queries

KEY_LOCK = 7264  # advisory lock: batches hold it shared, an answer-key correction or a unit move exclusively


class Projector:
    """Applies events to the projection tables inside the caller's transaction."""

    # The event types that change a projection; the others (attempt starts, access-key reissues, the
    # committee's audit records) are kept by the event table alone.
    PROJECTED = (ParticipantRegistered, SubmissionReceived, ParticipantDisqualified, AnswerKeyCorrected,
                 ParticipantErased, ParticipantMoved)
    # Events whose projection rewrites rows other batches write concurrently: their batch runs alone.
    EXCLUSIVE = (AnswerKeyCorrected, ParticipantMoved)

    def __init__(self, contest: Contest) -> None:
        self.contest = contest
        self.counted = q.CountedStatements(contest)
        self.periods = [p.number for p in contest.periods]

    async def apply(self, conn: Connection, events: Sequence[tuple[EventKey, AnyEvent]]) -> None:
        alone = any(isinstance(e, self.EXCLUSIVE) for _, e in events)
        await xact_lock(conn, KEY_LOCK, shared=not alone)
        # Events apply in key order, but a batch groups them by kind: only a correction's
        # position matters (entries scored before it are rescored by it), so split there.
        start = 0
        for i, (key, event) in enumerate(events):
            if isinstance(event, AnswerKeyCorrected):
                await self._apply_plain(conn, events[start:i])
                await q.add_correction(conn, key, event.question_id, event.answer, event.at_ms)
                await q.rescore(conn, self.counted, self.contest, event.question_id)
                start = i + 1
        await self._apply_plain(conn, events[start:])
        # The erased in the published rankings: last, after every other lock (results_queries.NAMES_LOCK).
        await results_queries.erase_names(conn, [pid for _, e in events if isinstance(e, ParticipantErased)
                                                 for pid in e.participant_ids])

    async def _apply_plain(self, conn: Connection, events: Sequence[tuple[EventKey, AnyEvent]]) -> None:
        """Set-based: one statement per table for the whole batch. Attempt starts project nothing:
        the event table keeps them."""
        by_kind: dict[type, list[tuple[EventKey, Any]]] = {}
        for key, event in events:  # one pass: most events are submissions and attempt starts
            by_kind.setdefault(type(event), []).append((key, event))
        registered = [e for _, e in by_kind.get(ParticipantRegistered, ())]
        submitted = by_kind.get(SubmissionReceived, [])
        disqualified = by_kind.get(ParticipantDisqualified, [])
        moved = by_kind.get(ParticipantMoved, [])
        if registered:
            await q.add_participants(conn, registered)
        if submitted:
            await q.add_entries(conn, self.counted, self.contest, await q.answer_keys(conn, self.contest), submitted)
        if disqualified:
            await q.add_disqualifications(conn, disqualified)
        for _, erased in by_kind.get(ParticipantErased, ()):  # after the registrations: either order converges
            await personal_queries.erase(conn, erased.participant_ids, erased.at_ms)
        if moved:  # after the entries: a participant's entries of this batch move with them
            await q.add_moves(conn, self.periods, moved)
