"""Every Redis key, stream and group name, in one place (all under the contest's slug)."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_FIELD = b"e"  # the stream entry field holding a msgpack list of events
GROUP = "scorers"  # the one consumer group that archives and projects events


@dataclass(frozen=True)
class Keys:
    """Key names of one contest; the {slug} hash tag keeps them in one Redis Cluster slot."""

    slug: str

    @property
    def prefix(self) -> str:
        return f"cchc:{{{self.slug}}}"

    @property
    def stream(self) -> str:
        """The event stream every ingest process appends to."""
        return f"{self.prefix}:events"

    @property
    def participants(self) -> str:
        """HASH participant_id → "group|unit_code" (what attempts need to know)."""
        return f"{self.prefix}:participants"

    @property
    def id_hashes(self) -> str:
        """HASH keyed hash of the CCCD → participant_id (one person, one account)."""
        return f"{self.prefix}:idn"

    @property
    def phone_hashes(self) -> str:
        """HASH keyed hash of the phone → participant_id."""
        return f"{self.prefix}:phone"

    @property
    def access(self) -> str:
        """HASH participant_id → keyed hash of its access key (starting an attempt needs the key)."""
        return f"{self.prefix}:access"

    @property
    def births(self) -> str:
        """HASH participant_id → keyed hash of the birth date (recovering a lost access key needs it)."""
        return f"{self.prefix}:birth"

    def recoveries(self, id_hash: str) -> str:
        """STRING counter with a TTL: access-key recoveries asked for one CCCD this hour."""
        return f"{self.prefix}:recover:{id_hash}"

    def rate(self, address_hash: str, minute: int) -> str:
        """STRING counter with a TTL: requests of one client address (keyed hash) in one minute."""
        return f"{self.prefix}:rate:{address_hash}:{minute}"

    @property
    def disqualified(self) -> str:
        """SET of disqualified participant ids (they cannot start attempts)."""
        return f"{self.prefix}:dq"

    def attempts(self, period: int) -> str:
        """HASH participant_id → attempts started in `period`."""
        return f"{self.prefix}:attempts:{period}"

    @property
    def dead_letters(self) -> str:
        """Stream of entries no scorer could decode or project: {entry_id, raw, error}. Never trimmed."""
        return f"{self.prefix}:dead-letters"

    def heartbeat(self, consumer: str) -> str:
        """STRING with a TTL: a scorer's last sign of life (ms); gone when it stops beating."""
        return f"{self.prefix}:heartbeat:{consumer}"

    @property
    def heartbeat_pattern(self) -> str:
        return f"{self.prefix}:heartbeat:*"

    @property
    def receipts(self) -> str:
        """HASH attempt_id → the JSON receipt of its one accepted submission."""
        return f"{self.prefix}:receipts"
