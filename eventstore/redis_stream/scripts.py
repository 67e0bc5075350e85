"""The Lua scripts (eventstore/lua/*.lua), called by their SHA1, and what each answers, typed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal


def _lua(name: str) -> str:
    return resources.files("eventstore").joinpath("lua").joinpath(f"{name}.lua").read_text()


def _script(name: str) -> str:
    """A write script: the shared prelude (write records, the store's clock), its `one(A)`
    (eventstore/lua/NAME.lua), then the batch loop (batch.lua)."""
    return _lua("prelude") + _lua(name) + _lua("batch")


# -- what the scripts answer, typed ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Registered:
    """Both identities claimed and the event appended — by this request, or (a kept answer) by the first
    run of the same write: then `participant_id` is that run's, and `sealed_key` its access key, sealed."""

    participant_id: str
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class IdentityTaken:
    field: Literal["id_number", "phone"]


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The Idempotency-Key was used before with another body (422, nothing written)."""


@dataclass(frozen=True, slots=True)
class Late:
    """The write reached the store later than its stamp allows (DESIGN §3): nothing written (503)."""


@dataclass(frozen=True, slots=True)
class AttemptOpened:
    """The attempt started (or, kept, the first run's): its AttemptStarted event as appended."""

    group: str
    unit_code: str | None
    event: bytes


AttemptRefusal = Literal["unknown_participant", "invalid_credentials", "disqualified", "attempt_limit",
                         "unknown_group"]


@dataclass(frozen=True, slots=True)
class AttemptRefused:
    reason: AttemptRefusal


@dataclass(frozen=True, slots=True)
class SubmissionAccepted:
    receipt: bytes


@dataclass(frozen=True, slots=True)
class SubmissionRepeated:
    """The attempt was submitted before: its original receipt, nothing new recorded."""

    receipt: bytes


@dataclass(frozen=True, slots=True)
class SubmissionRefused:
    reason: str  # the refusal the caller computed (period_closed, deadline_passed, invalid)


@dataclass(frozen=True, slots=True)
class KeyReissued:
    participant_id: str
    sealed_key: bytes  # the new access key, sealed (a kept answer gives the first run's)


@dataclass(frozen=True, slots=True)
class RecoveryRefused:
    reason: Literal["rate_limited", "invalid_credentials"]
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Allowed:
    """Within the client address's limit for this minute."""


@dataclass(frozen=True, slots=True)
class Limited:
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Erased:
    """The participants' personal data is erased: at `at_ms` (a participant erased before: its first time),
    `newly` of them by this call (0: nothing appended)."""

    at_ms: int
    newly: int


@dataclass(frozen=True, slots=True)
class ErasureRefused:
    reason: Literal["invalid_credentials", "unknown_participant"]


@dataclass(frozen=True, slots=True)
class Moved:
    """The participant's unit changed; what it was (`group|unit`)."""

    former_info: str


@dataclass(frozen=True, slots=True)
class KeyReset:
    participant_id: str
    sealed_key: bytes  # the new access key, sealed


@dataclass(frozen=True, slots=True)
class NoSuchParticipant:
    """The committee named a participant ingest does not know."""


@dataclass(frozen=True, slots=True)
class ErasedParticipant:
    """The participant's personal data was erased: no new access key (their old one is a tombstone)."""


RegisterOutcome = Registered | IdentityTaken | KeyReused
StartOutcome = AttemptOpened | AttemptRefused | Late | KeyReused
SubmitOutcome = SubmissionAccepted | SubmissionRepeated | SubmissionRefused | Late
RecoverOutcome = KeyReissued | RecoveryRefused | KeyReused
RateOutcome = Allowed | Limited
EraseOutcome = Erased | ErasureRefused | KeyReused


def register_outcome(reply: list[Any]) -> RegisterOutcome:
    if reply[0] == b"registered":
        return Registered(reply[1].decode(), reply[2])
    if reply[0] == b"mismatch":
        return KeyReused()
    return IdentityTaken("phone" if reply[1] == b"phone" else "id_number")


def start_outcome(reply: list[Any]) -> StartOutcome:
    if reply[0] == b"started":
        group, _, unit = reply[1].decode().partition("|")
        return AttemptOpened(group, unit or None, reply[2])
    if reply[0] == b"late":
        return Late()
    if reply[0] == b"mismatch":
        return KeyReused()
    return AttemptRefused(reply[1].decode())  # the script names only these


def found_outcome(reply: list[Any]) -> RecoverOutcome | str:
    """The first step of a recovery: the participant's id when CCCD and phone found it, else the refusal."""
    if reply[0] == b"found":
        return str(reply[1].decode())
    return _recovery_refused(reply)


def reissue_outcome(reply: list[Any]) -> RecoverOutcome:
    if reply[0] == b"reissued":
        return KeyReissued(reply[1].decode(), reply[2])
    return _recovery_refused(reply)


def _recovery_refused(reply: list[Any]) -> RecoverOutcome:
    if reply[0] == b"mismatch":
        return KeyReused()
    if reply[1] == b"rate_limited":
        return RecoveryRefused("rate_limited", max(1, int(reply[2])))
    return RecoveryRefused("invalid_credentials", 0)


def erase_outcome(reply: list[Any]) -> EraseOutcome:
    if reply[0] == b"erased":
        return Erased(int(reply[1]), int(reply[2]))
    if reply[0] == b"mismatch":
        return KeyReused()
    return ErasureRefused("unknown_participant" if reply[1] == b"unknown_participant" else "invalid_credentials")


def move_outcome(reply: list[Any]) -> Moved | NoSuchParticipant:
    return Moved(reply[1].decode()) if reply[0] == b"moved" else NoSuchParticipant()


def reset_outcome(reply: list[Any]) -> KeyReset | NoSuchParticipant | ErasedParticipant:
    if reply[0] == b"reset":
        return KeyReset(reply[1].decode(), reply[2])
    return ErasedParticipant() if reply[1] == b"erased" else NoSuchParticipant()


def rate_outcome(reply: list[Any]) -> RateOutcome:
    return Allowed() if reply[0] == b"allowed" else Limited(max(1, int(reply[1])))


def submit_outcome(reply: list[bytes]) -> SubmitOutcome:
    """The submission script's reply, read."""
    kind, value = reply
    if kind == b"accepted":
        return SubmissionAccepted(value)
    if kind == b"repeated":
        return SubmissionRepeated(value)
    if kind == b"late":
        return Late()
    return SubmissionRefused(value.decode())


@dataclass(frozen=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA): redis-py's pipelined scripts would add a
    SCRIPT EXISTS round trip to every batch; the source goes along (EVAL) only when Redis says NOSCRIPT."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:  # Redis names scripts by the SHA1 of their source
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


SCRIPTS = {name: Script(_script(name)) for name in
           ("register_keys", "register", "forget_keys", "start_attempt", "submit", "recover", "reissue", "rate",
            "append", "erase", "move", "reset_key")}
READS = {name: Script(_lua(name)) for name in ("read_participant", "read_current")}
LEASES = Script(_lua("renew_lease"))
PARK = Script(_lua("park"))  # the dead letters (a scorer parks, an operator requeues): rare,
REQUEUE = Script(_lua("requeue"))  # called by their source like LEASES
RELEASE = Script(_lua("release"))  # identity claims of erased participants (cchc forget --expired)
RECOVERIES_PER_HOUR = 5  # per CCCD (DESIGN §6)
