"""Request and response bodies of the ingest API (DESIGN §6), as msgspec types."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contest.model import Choice, Identifier


class Consent(msgspec.Struct, forbid_unknown_fields=True):
    """The privacy notice the participant accepted: its `privacy.version` of GET /v1/contest."""

    version: Annotated[str, msgspec.Meta(max_length=64)]


class Registration(msgspec.Struct, forbid_unknown_fields=True):
    full_name: Annotated[str, msgspec.Meta(max_length=400)]
    id_number: Annotated[str, msgspec.Meta(max_length=32)]
    phone: Annotated[str, msgspec.Meta(max_length=32)]
    birth_date: Annotated[str, msgspec.Meta(max_length=10)]
    group: Annotated[str, msgspec.Meta(max_length=64)]
    unit_code: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    consent: Consent | None = None


class Credentials(msgspec.Struct):
    """A participant's id and access key (registration, or a recovered key): the key is shown once."""

    participant_id: str
    access_key: str


class AccessKeyRecovery(msgspec.Struct, forbid_unknown_fields=True):
    id_number: Annotated[str, msgspec.Meta(max_length=32)]
    phone: Annotated[str, msgspec.Meta(max_length=32)]
    birth_date: Annotated[str, msgspec.Meta(max_length=10)]


class AttemptRequest(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Identifier


class QuestionOut(msgspec.Struct):
    id: str
    text: str
    options: dict[str, str]


class AttemptStartedOut(msgspec.Struct):
    attempt_id: str
    token: str
    period: int
    started_at: str
    deadline: str
    questions: list[QuestionOut]


class Submission(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    answers: Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Choice], msgspec.Meta(max_length=500)]
    prediction: Annotated[int, msgspec.Meta(ge=0, le=10**15)]


class Receipt(msgspec.Struct):
    submission_id: str
    attempt_id: str
    received_at: str
    duration_ms: int  # the server's receive time minus its start time, in the store's clock


class ConsentOut(msgspec.Struct):
    version: str
    at: str


class ReceiptOut(msgspec.Struct):
    attempt_id: str
    submission_id: str
    received_at: str
    duration_ms: int


class PeriodHeldOut(msgspec.Struct):
    number: int
    attempts_started: int
    receipts: list[ReceiptOut]


class ParticipantMe(msgspec.Struct):
    """What the service holds about the participant (the right of access, DESIGN §10), live."""

    participant_id: str
    full_name: str
    group: str
    unit_code: str | None
    unit_name: str | None
    phone_masked: str
    birth_date: str
    registered_at: str
    consent: ConsentOut | None
    periods: list[PeriodHeldOut]


class Erasure(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/participants/me/erasure: `confirm` must be true (anything else is 422: nothing is erased)."""

    confirm: bool


class ErasureOut(msgspec.Struct):
    participant_id: str
    erased_at: str


class RulesOut(msgspec.Struct):
    questions_per_attempt: int
    time_limit_seconds: int
    grace_seconds: int
    attempts_per_period: int
    points_per_correct: int
    min_age: int
    id_check: str
    prediction_question: str
    freeze_minutes: int


class PeriodOut(msgspec.Struct):
    number: int
    name: str
    start: str
    end: str
    status: Literal["upcoming", "open", "closing", "closed"]


class PrizeOut(msgspec.Struct):
    code: str
    name: str
    count: int


class GroupOut(msgspec.Struct):
    code: str
    name: str
    needs_unit: bool  # unit_code is required when registering in this group
    prizes: list[PrizeOut]


class UnitOut(msgspec.Struct):
    code: str
    name: str
    parent_code: str | None


class PrivacyOut(msgspec.Struct):
    version: str  # what a registration's consent.version must be
    controller: str
    notice: str  # the notice's text


class ContestOut(msgspec.Struct):
    """What a front-end shows before sign-in (GET /v1/contest)."""

    slug: str
    title: str
    timezone: str
    rehearsal: bool
    rules: RulesOut
    periods: list[PeriodOut]
    groups: list[GroupOut]
    units: list[UnitOut]
    privacy: PrivacyOut | None
