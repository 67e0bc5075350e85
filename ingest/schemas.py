"""Request and response bodies of the ingest API (DESIGN §6), as msgspec types."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contest.model import Choice, Identifier


class Registration(msgspec.Struct, forbid_unknown_fields=True):
    full_name: Annotated[str, msgspec.Meta(max_length=400)]
    id_number: Annotated[str, msgspec.Meta(max_length=32)]
    phone: Annotated[str, msgspec.Meta(max_length=32)]
    birth_date: Annotated[str, msgspec.Meta(max_length=10)]
    group: Annotated[str, msgspec.Meta(max_length=64)]
    unit_code: Annotated[str, msgspec.Meta(max_length=64)] | None = None


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
