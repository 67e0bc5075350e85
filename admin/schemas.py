"""Request and response bodies of the committee's HTTP door (DESIGN §6 admin routes), as msgspec types."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contest.flags import Flag
from contest.model import Choice, Identifier
from contest.questions import QuestionStat


class Disqualification(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Identifier
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class Disqualified(msgspec.Struct):
    participant_id: str
    status: Literal["disqualified"] = "disqualified"


class FlagsOut(msgspec.Struct):
    period: int
    flags: list[Flag]


class AnswerKeyCorrection(msgspec.Struct, forbid_unknown_fields=True):
    question_id: Identifier
    answer: Choice
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class AnswerKeyCorrected(msgspec.Struct):
    question_id: str
    answer: Choice


class QuestionsOut(msgspec.Struct):
    period: int | None
    questions: list[QuestionStat]


class ErasureRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The committee erases a participant's personal data (a request received by other means)."""

    participant_id: Identifier
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ErasedOut(msgspec.Struct):
    participant_id: str
    erased_at: str
