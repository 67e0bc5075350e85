"""Every Redis key, stream and group name, in one place (all under the contest's slug).

The stream is split into partitions (DESIGN §4): a participant belongs to one, and every key of that
participant shares its partition's hash tag `{slug:p}` with the partition's stream, so each ingest
write is one script call on one Redis Cluster slot. What belongs to nobody in particular — the
identity claims, the registrations and the contest-wide events, the scorers' heartbeats and leases —
lives in the contest's own slot `{slug}`, whose stream is numbered CONTEST_STREAM."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property

from runtime.settings import MAX_PARTITIONS

EVENT_FIELD = b"e"  # the stream entry field holding a msgpack list of events
GROUP = "scorers"  # the consumer group (one per stream) that archives and projects events
CONTEST_STREAM = -1  # the number of the contest slot's stream; partitions are 0 … P-1


def record_key(prefix: str, write_id: str) -> str:
    """STRING with a TTL: the reply a write keeps under its id (DESIGN §5.7, eventstore/lua/prelude.lua), in
    the slot of the keys sharing `prefix`."""
    return f"{prefix}:w:{write_id}"


@dataclass(frozen=True)
class Slot:
    """The keys sharing one hash tag: a partition's (number ≥ 0) or the contest's (CONTEST_STREAM)."""

    number: int
    prefix: str

    @cached_property
    def stream(self) -> str:
        """The event stream of this slot (ingest appends; one consumer group reads it)."""
        return f"{self.prefix}:events"

    @cached_property
    def dead_letters(self) -> str:
        """Stream of this stream's entries no scorer could decode or project: {entry_id, raw, error}. Never trimmed."""
        return f"{self.prefix}:dead-letters"

    @cached_property
    def rejections(self) -> str:
        """HASH entry_id → "count:last_ms": PostgreSQL's refusals of an entry tried with nothing else beside it
        to show whose fault it was (the scorer parks it after enough of them; outages never count). Expires
        on its own: a refusal long ago tells nothing."""
        return f"{self.prefix}:rejections"

    # -- a partition's participants ----------------------------------------------------------------

    @cached_property
    def participants(self) -> str:
        """HASH participant_id → "group|unit_code" (what attempts need to know)."""
        return f"{self.prefix}:participants"

    @cached_property
    def access(self) -> str:
        """HASH participant_id → keyed hash of its access key (starting an attempt needs the key)."""
        return f"{self.prefix}:access"

    @cached_property
    def births(self) -> str:
        """HASH participant_id → keyed hash of the birth date (recovering a lost access key needs it)."""
        return f"{self.prefix}:birth"

    @cached_property
    def disqualified(self) -> str:
        """SET of disqualified participant ids (they cannot start attempts)."""
        return f"{self.prefix}:dq"

    def attempts(self, period: int) -> str:
        """HASH participant_id → the ids of the attempts it started in `period`, one string of 36-character
        ids (their count is the attempts started)."""
        return f"{self.prefix}:attempts:{period}"

    @cached_property
    def receipts(self) -> str:
        """HASH attempt_id → the JSON receipt of its one accepted submission."""
        return f"{self.prefix}:receipts"

    @cached_property
    def profiles(self) -> str:
        """HASH participant_id → its registration as the participant sees it (GET /v1/participants/me:
        name, birth date, masked phone, times, consent), sealed."""
        return f"{self.prefix}:profile"

    @cached_property
    def personal(self) -> str:
        """HASH participant_id → its PersonalCopy (eventstore.pii, msgpack): its data key wrapped and the plain
        values the projections show (a scorer copies it into PostgreSQL). Never in the stream: an erasure
        deletes it, and with it the only key to what the event record holds sealed (DESIGN §10)."""
        return f"{self.prefix}:personal"

    @cached_property
    def erased(self) -> str:
        """HASH participant_id → when its personal data was erased (ms): the record of erasures in the
        other store (the erasure log beside the backups is PostgreSQL's; eventstore.erasure_log)."""
        return f"{self.prefix}:erased"

    def current(self, participant_id: str) -> str:
        """STRING with a TTL (the attempt's time limit and grace): the participant's latest attempt id and
        its AttemptStarted event (GET /v1/attempts/current: a resume on another device)."""
        return f"{self.prefix}:current:{participant_id}"


@dataclass(frozen=True)
class Keys:
    """Key names of one contest split into `partitions` streams (plus the contest's own)."""

    slug: str
    partitions: int = 1
    _slots: tuple[Slot, ...] = field(init=False, repr=False, compare=False)  # built once: the hot path asks often

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be between 1 and {MAX_PARTITIONS}, not {self.partitions}")
        object.__setattr__(self, "_slots", tuple(Slot(n, f"cchc:{{{self.slug}:{n}}}") for n in range(self.partitions)))

    @property
    def prefix(self) -> str:
        return f"cchc:{{{self.slug}}}"

    def partition_of(self, participant_id: str) -> int:
        """A stable hash of the participant id (CRC-32: the same in every process and language)."""
        return zlib.crc32(participant_id.encode()) % self.partitions

    def of(self, participant_id: str) -> Slot:
        """The slot of a participant's keys and of the stream its events go to."""
        return self._slots[zlib.crc32(participant_id.encode()) % self.partitions]

    def slot(self, number: int) -> Slot:
        if number == CONTEST_STREAM:
            return Slot(CONTEST_STREAM, self.prefix)
        if not 0 <= number < self.partitions:
            raise ValueError(f"no partition {number} of {self.partitions}")
        return self._slots[number]

    @property
    def numbers(self) -> list[int]:
        """Every stream's number: the contest's, then the partitions'."""
        return [CONTEST_STREAM, *range(self.partitions)]

    @property
    def slots(self) -> list[Slot]:
        return [self.slot(n) for n in self.numbers]

    @property
    def contest(self) -> Slot:
        """The contest's slot: registrations and contest-wide events go to its stream."""
        return self.slot(CONTEST_STREAM)

    # -- the contest's slot ------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        """STRING: the number of partitions the contest's keys were written with (a process started
        with another number would route participants elsewhere: it refuses to start)."""
        return f"{self.prefix}:partitions"

    @property
    def closed(self) -> str:
        """SET of the numbers of the periods the committee has closed (ingest, which stands on Redis alone,
        reads it for the periods' status in GET /v1/contest)."""
        return f"{self.prefix}:closed"

    @property
    def id_hashes(self) -> str:
        """HASH keyed hash of the CCCD → participant_id (one person, one account)."""
        return f"{self.prefix}:idn"

    @property
    def phone_hashes(self) -> str:
        """HASH keyed hash of the phone → participant_id."""
        return f"{self.prefix}:phone"

    def recoveries(self, id_hash: str) -> str:
        """STRING counter with a TTL: access-key recoveries asked for one CCCD this hour."""
        return f"{self.prefix}:recover:{id_hash}"

    @property
    def heartbeats(self) -> str:
        """ZSET consumer → its last sign of life (ms): a scorer beating within the lease time is alive."""
        return f"{self.prefix}:heartbeats"

    def lease(self, number: int) -> str:
        """STRING with a TTL: the scorer that reads stream `number` now (renewed with its heartbeat)."""
        return f"{self.prefix}:lease:{number}"

    # -- the committee's desk (DESIGN §6b): a slot of its own, away from the contest's hot keys -------------

    @property
    def desk_prefix(self) -> str:
        return f"cchc:{{{self.slug}:desk}}"

    def desk_session(self, token_hash: str) -> str:
        """HASH {name, csrf} with a TTL renewed at every use (the idle expiry): one signed-in organiser,
        named by the keyed hash of their cookie's value (the cookie itself is nowhere at rest)."""
        return f"{self.desk_prefix}:session:{token_hash}"

    def desk_failures(self, address_hash: str) -> str:
        """ZSET of failed sign-ins from one client address (keyed hash) → their time in ms: the sliding
        window of the sign-in limit, with a TTL of the window."""
        return f"{self.desk_prefix}:failures:{address_hash}"

    def rate_prefix(self, address_hash: str) -> str:
        """The keys of one client address (keyed hash): `PREFIX:MINUTE`, a STRING counter with a TTL of its
        requests in one minute. A tag of its own: these counters spread over the cluster instead of loading
        the contest's slot."""
        return f"cchc:{{{self.slug}:rate:{address_hash}}}"
