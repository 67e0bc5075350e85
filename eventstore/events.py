"""Event types (versioned msgspec Structs) and their msgpack encoding."""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, tag_field="type", kw_only=True, gc=False):
    """Base of every event; `v` is the schema version of the event type.

    gc=False: events are plain data (no reference cycles), and a scorer holding a batch of them
    otherwise pays the cyclic GC's scans (measured: 5.9 → 2.1 µs a decoded event)."""

    v: int = 1


class ParticipantRegistered(Event, tag="participant_registered", frozen=True, kw_only=True, omit_defaults=True):
    """v2 (ingest since data keys): nothing personal in plain. `pii` holds {id_number, phone, birth_date,
    full_name} sealed under the participant's own data key, whose wrapped copies live outside the event
    record (Redis beside the participant's keys, PostgreSQL's keyring `participant_personal`, with the plain
    display name, masked phone and keyed hashes the projections use): an erasure destroys them and leaves
    this event unreadable (DESIGN §10). v1 (before data keys; also `cchc simulate`'s made-up people): `pii`
    sealed under CCHC_PII_KEY itself and the plain fields below filled."""

    participant_id: str
    group: str
    unit_code: str | None
    pii: bytes
    registered_ms: int
    consent_version: str = ""  # the privacy notice's version the participant accepted ("" : the contest asks none)
    consent_ms: int = 0  # when
    # v1 only (v2 leaves them empty: they are in the participant's PersonalCopy)
    display_name: str = ""
    phone_masked: str = ""
    id_hash: str = ""
    phone_hash: str = ""
    address_hash: str = ""  # keyed hash of the client address it registered from (flags for the committee)


class AttemptStarted(Event, tag="attempt_started", frozen=True, kw_only=True):
    attempt_id: str
    participant_id: str
    period: int
    started_ms: int
    question_ids: list[str]


class SubmissionReceived(Event, tag="submission_received", frozen=True, kw_only=True):
    submission_id: str
    attempt_id: str
    participant_id: str
    group: str
    unit_code: str | None
    period: int
    started_ms: int
    received_ms: int
    question_ids: list[str]
    answers: dict[str, str]
    prediction: int


class ParticipantDisqualified(Event, tag="participant_disqualified", frozen=True, kw_only=True):
    participant_id: str
    reason: str
    at_ms: int
    by: str = ""  # the organiser's name (their admin token's), or cli:USER


class AccessKeyReissued(Event, tag="access_key_reissued", frozen=True, kw_only=True):
    """A participant proved CCCD, phone and birth date and got a new access key (the old one stopped
    working). Named by its id; events before data keys named it by the CCCD's keyed hash instead (a keyed
    hash of a 12-digit number in the permanent record could be searched with the key after an erasure)."""

    at_ms: int
    participant_id: str = ""
    id_hash: str = ""


class ParticipantErased(Event, tag="participant_erased", frozen=True, kw_only=True):
    """The participants' personal data erased (DESIGN §10): their data keys were destroyed with this event's
    append, so what was sealed under them is unreadable everywhere; the event records the erasure, not the
    data. Their entries and prizes stand. One participant (their own request, the committee's) or many
    (`cchc forget --expired`, in chunks of one partition)."""

    participant_ids: list[str]
    at_ms: int
    by: str = ""  # "participant" (their own request), the organiser's name, cli:USER
    reason: str = ""


class AccessKeyReset(Event, tag="access_key_reset", frozen=True, kw_only=True):
    """The committee's hotline gave a participant a new access key (the old one stopped working); the key
    itself was shown once to the staff member and is nowhere at rest but as a keyed hash."""

    participant_id: str
    at_ms: int
    by: str
    reason: str


class AnswerKeyCorrected(Event, tag="answer_key_corrected", frozen=True, kw_only=True):
    question_id: str
    answer: str
    at_ms: int
    by: str = ""
    reason: str = ""


class ParticipantMoved(Event, tag="participant_moved", frozen=True, kw_only=True):
    """The committee moved a participant to another unit (DESIGN §3 "Corrections"): the periods not yet
    closed count them in `unit_code`, entries already made included; a result counts each participant in
    the unit they belonged to at its barrier, so a closed period keeps the old one until recomputed."""

    participant_id: str
    unit_code: str
    from_unit: str | None  # what the desk showed (the audit's line); the projection never reads it
    at_ms: int
    by: str
    reason: str


class CommitteeRead(Event, tag="committee_read", frozen=True, kw_only=True):
    """Who read what (DESIGN §10): an export with personal data, a hotline look-up by CCCD or phone (never
    the value looked up). An audit record only: it projects nothing."""

    what: str  # "personal_data_export" | "lookup_id_number" | "lookup_phone"
    subject: str  # the export's period or "final"; the participant found by a look-up ("" : nobody)
    at_ms: int
    by: str
    reason: str


class ResultsPublished(Event, tag="results_published", frozen=True, kw_only=True):
    """Written by a close or recompute into the event table (key just after `barrier`) in the same
    transaction as its result, so a replay recomputes it at the same point and checks the digest."""

    period: int
    revision: int
    barrier: str
    results_digest: str
    by: str = ""  # who closed or recomputed
    reason: str = ""  # why (a recompute's; a close may give one)
    # The display names the published prize list shows (participant id → name), so a replay after an
    # erasure publishes the same list and digest (DESIGN §10: published winners keep their names). None in
    # markers from before: a replay then takes the names from the projection.
    names: dict[str, str] | None = None


AnyEvent = ParticipantRegistered | AttemptStarted | SubmissionReceived | ParticipantDisqualified \
    | AnswerKeyCorrected | ResultsPublished | AccessKeyReissued | ParticipantErased | ParticipantMoved \
    | CommitteeRead | AccessKeyReset

# The committee's actions, as the desk's audit view lists them (DESIGN §6b "Nhật ký"); erasures too, whoever
# asked for them (the participant, the committee, the retention).
COMMITTEE_KINDS = (ParticipantDisqualified, AnswerKeyCorrected, ResultsPublished, ParticipantMoved, AccessKeyReset,
                   CommitteeRead, ParticipantErased)

# Each event type's tag (its `type` on the wire and `kind` in the event table).
TAGS: dict[type, str] = {kind: kind.__struct_config__.tag for kind in AnyEvent.__args__}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)
_list_decoder = msgspec.msgpack.Decoder(list[AnyEvent])


def encode(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def encode_many(events: list[AnyEvent]) -> bytes:
    return _encoder.encode(events)


def decode(data: bytes) -> AnyEvent:
    """One event as the event table stores it."""
    event: AnyEvent = _decoder.decode(data)
    return event


def decode_many(data: bytes) -> list[AnyEvent]:
    """A stream entry carries a list of events; each gets its own id (entry id + index)."""
    return _list_decoder.decode(data)
