"""Request and response bodies of the committee's JSON door (DESIGN §6 admin routes, §6b's actions), as
msgspec types: they feed the routes' decoding and the desk's /openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from admin.service import AttemptLine, AuditLine, CloseJob, Moved, Overview, Revision
from contest.flags import Flag, FlagCase
from contest.model import Choice, Identifier
from contest.participation import UnitParticipation
from contest.questions import CorrectionImpact, QuestionStat
from contest.revisions import PrizeChange
from projections.close import PeriodClosed
from projections.desk_queries import Registration, Reminder

Reason = Annotated[str, msgspec.Meta(max_length=1000)]
NeededReason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class Disqualification(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Identifier
    reason: NeededReason


class Disqualified(msgspec.Struct):
    participant_id: str
    status: Literal["disqualified"] = "disqualified"


class FlagsOut(msgspec.Struct):
    period: int
    flags: list[Flag]


class FlagCasesOut(msgspec.Struct):
    period: int
    cases: list[FlagCase]


class AnswerKeyCorrection(msgspec.Struct, forbid_unknown_fields=True):
    question_id: Identifier
    answer: Choice
    reason: Reason = ""


class AnswerKeyCorrected(msgspec.Struct):
    question_id: str
    answer: Choice


class QuestionsOut(msgspec.Struct):
    period: int | None
    questions: list[QuestionStat]


class ImpactOut(msgspec.Struct):
    question_id: str
    key: str  # as it stands
    answer: str  # the correction's
    periods: list[CorrectionImpact]


class WhyBody(msgspec.Struct, forbid_unknown_fields=True):
    """A close's or recompute's optional body."""

    reason: Reason = ""


class ClosingOut(msgspec.Struct):
    """A close or recompute running (or run) in the desk's process: its step and, once done, its answer."""

    period: int
    recompute: bool
    by: str
    started_ms: int
    phase: str
    phase_ms: int
    result: PeriodClosed | None
    error: str | None
    error_code: str | None

    @classmethod
    def of(cls, job: CloseJob) -> ClosingOut:
        return cls(job.period, job.recompute, job.by, job.started_ms, job.phase, job.phase_ms, job.result, job.error,
                   job.error_code)


class RevisionsOut(msgspec.Struct):
    period: int
    revisions: list[Revision]


class ChangesOut(msgspec.Struct):
    period: int
    before: int
    after: int
    changes: list[PrizeChange]


class UnitMove(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Identifier
    unit_code: Identifier
    reason: NeededReason


class KeyReset(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Identifier
    reason: NeededReason


class KeyOut(msgspec.Struct):
    participant_id: str
    access_key: str


class Lookup(msgspec.Struct, forbid_unknown_fields=True):
    """A hotline search: a participant id, a CCCD or a phone number (never in a URL or a log)."""

    query: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    reason: Reason = ""  # required for a CCCD or a phone: the look-up is recorded with it


class LookupOut(msgspec.Struct):
    participant_id: str
    found_by: str  # participant_id | id_number | phone


class ParticipantOut(msgspec.Struct):
    registration: Registration
    attempts: list[AttemptLine]


class ParticipationOut(msgspec.Struct):
    period: int | None
    units: list[UnitParticipation]


class RemindersOut(msgspec.Struct):
    unit_code: str
    period: int | None
    participants: list[Reminder]


class AuditOut(msgspec.Struct):
    events: list[AuditLine]


class ErasureRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The committee erases a participant's personal data (a request received by other means)."""

    participant_id: Identifier
    reason: NeededReason


class ErasedOut(msgspec.Struct):
    participant_id: str
    erased_at: str


class ExportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A file: a closed period's (or `final`), Excel or CSV; the public copy; the winners' personal data
    only with a reason (recorded)."""

    period: Annotated[str, msgspec.Meta(pattern="^([0-9]{1,9}|final)$")]
    format: Literal["xlsx", "csv"] = "xlsx"
    revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    public: bool = False
    personal_data_reason: Reason | None = None


__all__ = ["Moved", "Overview"]
