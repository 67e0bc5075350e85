"""The erasure log kept beside the backups (DESIGN §10): one JSON line per erasure — the participant ids,
when, by whom; no personal data — appended by whoever erases (ingest for a participant's own request, the
committee's service, `cchc forget --expired`), and read after a restore (ops.erasure.reapply_erasures) so
that no restore of PostgreSQL brings an erased person's data back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import msgspec
import structlog

from runtime import metrics

LOG_NAME = "erasures.log"  # in CCHC_BACKUP_DIR (default DATA_DIR/backups), beside the base backups


class LoggedErasure(msgspec.Struct, frozen=True):
    participant_ids: list[str]
    erased_ms: int
    by: str = ""


_decoder = msgspec.json.Decoder(LoggedErasure)


class ErasureLog:
    """`directory`/erasures.log, created readable by its owner only; each line is written whole by one
    append-mode write, then fsynced, so a crash leaves at most a torn last line (skipped when read)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOG_NAME

    def append(self, participant_ids: Sequence[str], erased_ms: int, by: str = "") -> None:
        line = msgspec.json.encode(LoggedErasure(list(participant_ids), erased_ms, by)) + b"\n"
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's name durable too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    async def record(self, participant_ids: Sequence[str], erased_ms: int, by: str = "") -> None:
        """append(), off the event loop, after an erasure that is done and recorded in Valkey whatever happens
        here: a log that cannot be written is the operator's error (logged, counted: RUNBOOK), not the caller's."""
        try:
            await asyncio.to_thread(self.append, participant_ids, erased_ms, by)
        except OSError as e:
            metrics.ERASURE_LOG_FAILURES.inc()
            structlog.get_logger().error("erasure_log_failed", path=str(self.path), error=str(e),
                                         participants=len(participant_ids))

    def read(self, *, since_ms: int = 0) -> tuple[list[LoggedErasure], int]:
        """The erasures made at or after `since_ms` (all by default), oldest first, and how many lines could
        not be read (a torn last line after a crash; anything else a person should look at)."""
        if not self.path.exists():
            return [], 0
        erasures, unreadable = [], 0
        for line in self.path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                erasure = _decoder.decode(line)
            except msgspec.DecodeError:
                unreadable += 1
                continue
            if erasure.erased_ms >= since_ms:
                erasures.append(erasure)
        return erasures, unreadable
