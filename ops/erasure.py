"""The seam between erasure and `cchc restore` (DESIGN §10): after PostgreSQL has been recovered from a backup,
every erasure recorded in the erasure log beside the backups is applied again, so that no restore brings an
erased person's data back. The backup side (ops/restore.py) calls `reapply_erasures` once recovery is done."""

from __future__ import annotations

from pathlib import Path

import msgspec
import structlog

from eventstore.erasure_log import ErasureLog
from eventstore.events import ParticipantErased, encode_many
from eventstore.postgres import Pool, transaction
from eventstore.redis_stream import personal
from eventstore.redis_stream.writer import StreamWriter, WriteId
from projections import personal_queries, results_queries

log = structlog.get_logger()
CHUNK = 1000  # participants per statement (and per Redis script call)


class Reapplied(msgspec.Struct):
    """What reapply_erasures applied: log lines, distinct participants (from the log and Valkey's record), and
    lines it could not read (a torn last line after a crash is harmless; any other is worth a look)."""

    erasures: int
    participants: int
    unreadable: int
    redis_erased: int = 0  # participants Redis had not erased (a Valkey rebuilt from an older copy)


async def reapply_erasures(pool: Pool, backup_dir: Path, *, since_ms: int = 0,
                           writer: StreamWriter | None = None) -> Reapplied:
    """Apply again, to the database `pool` reaches (the restored one), every erasure the erasure log
    (`backup_dir`/erasures.log; eventstore.erasure_log, written by every erasure: the participant's own, the
    committee's, the retention erasure) recorded at or after `since_ms`, by default all of them: applying an
    erasure twice changes nothing, and one made shortly before the restore point may not be in the restored
    database yet (its event still in the scorers' lag then). Pass `since_ms` (the restore point less some
    minutes) only to save time on a very long log.

    Per participant, in one transaction per chunk: the keyring's row (`participant_personal`,
    projections.personal_queries) becomes a tombstone — its wrapped data key and plain values gone, the
    earliest erasure time kept — and the participant's projection shows ERASED_NAME and holds nothing personal.
    So the sealed data in the restored event table can no longer be opened, the name is gone from every answer
    made afterwards, and a replay (the restore's digest check) projects the participant as erased with the same
    digests (a published prize list takes its names from its results_published marker).

    With `writer` (a StreamWriter on the contest's Valkey), pass it whenever Valkey is up: the erasures Valkey
    recorded (eventstore.keys: `erased`) are applied too, so an erasure whose log line was lost (a log that
    could not be written: cchc_erasure_log_failures_total) is not; and the Redis side of the log's erasures —
    personal copy, profile, birth hash, access key — for a Valkey rebuilt from an older copy: a participant
    Valkey had not erased gets its erasure event appended again (by "restore"). Without it Redis is left alone.

    It appends nothing to PostgreSQL's event table: after a restore to the latest point the scorers re-archive
    the erasure events from the stream; after a point-in-time restore the events after that point are gone
    with everything else, and the log keeps the record. Call it after recovery, before any process reads the
    database and before the replay check."""
    erasures, unreadable = ErasureLog(backup_dir).read(since_ms=since_ms)
    logged: dict[str, int] = {}  # participant → its earliest logged erasure
    for erasure in erasures:
        for pid in erasure.participant_ids:
            logged[pid] = min(logged.get(pid, erasure.erased_ms), erasure.erased_ms)
    in_valkey = await personal.erasures(writer.client, writer.keys) if writer is not None else {}
    first = {**{pid: at for pid, at in in_valkey.items() if at >= since_ms}, **logged}
    for pid, at_ms in in_valkey.items():
        if pid in first:
            first[pid] = min(first[pid], at_ms)
    for at_ms, ids in sorted(_by_time(first).items()):
        for start in range(0, len(ids), CHUNK):
            async with transaction(pool) as conn:
                await personal_queries.erase(conn, ids[start:start + CHUNK], at_ms)
                await results_queries.erase_names(conn, ids[start:start + CHUNK])
    done = Reapplied(len(erasures), len(first), unreadable)
    if writer is not None:
        done.redis_erased = await _in_redis(writer, _by_time({p: at for p, at in logged.items() if p not in in_valkey}))
    log.info("erasures_reapplied", erasures=done.erasures, participants=done.participants, unreadable=unreadable,
             redis_erased=done.redis_erased)
    return done


def _by_time(erased: dict[str, int]) -> dict[int, list[str]]:
    by_time: dict[int, list[str]] = {}
    for pid, at_ms in erased.items():
        by_time.setdefault(at_ms, []).append(pid)
    return by_time


async def _in_redis(writer: StreamWriter, by_time: dict[int, list[str]]) -> int:
    newly = 0
    for at_ms, ids in sorted(by_time.items()):
        by_partition: dict[int, list[str]] = {}
        for pid in ids:
            by_partition.setdefault(writer.keys.partition_of(pid), []).append(pid)
        for pids in by_partition.values():
            for start in range(0, len(pids), CHUNK):
                chunk = pids[start:start + CHUNK]
                event = encode_many([ParticipantErased(participant_ids=chunk, at_ms=at_ms, by="restore",
                                                       reason="erased before; applied again after a restore")])
                outcome = await writer.erase(WriteId.fresh(), chunk, event, at_ms, strict=False)
                newly += getattr(outcome, "newly", 0)
    return newly
