"""Hypothesis fuzzing of what reads untrusted input: every body decoder, the token parser and the
identity rules answer with our own errors (4xx) whatever the bytes. Quick by default; `make fuzz`
runs them with HYPOTHESIS_PROFILE=fuzz (thousands of examples)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.schemas import AnswerKeyCorrection, Disqualification
from contest.identity import IdentityError, check_full_name, normalize_id_number, normalize_phone, parse_birth_date
from ingest.schemas import AccessKeyRecovery, AttemptRequest, Registration, Submission
from ingest.tokens import AttemptClaims, InvalidToken, TokenSigner
from runtime.web import ApiError, decode_json

BODIES = (Registration, AccessKeyRecovery, AttemptRequest, Submission, Disqualification, AnswerKeyCorrection)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                         max_size=6), max_leaves=20)


def _decoded_or_refused(raw: bytes, kind: Any) -> None:
    try:
        decode_json(raw, kind)
    except ApiError as e:
        assert e.status in (400, 422) and e.code in ("malformed_json", "invalid")


@pytest.mark.parametrize("kind", BODIES)
@given(raw=st.binary(max_size=300))
def test_bytes_are_decoded_or_refused(kind: Any, raw: bytes) -> None:
    _decoded_or_refused(raw, kind)


@pytest.mark.parametrize("kind", BODIES)
@given(value=JSON_VALUES)
def test_json_of_any_shape_is_decoded_or_refused(kind: Any, value: Any) -> None:
    _decoded_or_refused(json.dumps(value).encode(), kind)


@pytest.mark.parametrize("kind", BODIES)
@given(fields=st.dictionaries(st.sampled_from(["full_name", "id_number", "phone", "birth_date", "group", "unit_code",
                                               "participant_id", "token", "answers", "prediction", "reason",
                                               "question_id", "answer"]), JSON_VALUES, max_size=8))
def test_near_valid_bodies_are_decoded_or_refused(kind: Any, fields: dict[str, Any]) -> None:
    _decoded_or_refused(json.dumps(fields).encode(), kind)


SIGNER = TokenSigner(b"s" * 32)
VALID = SIGNER.sign(AttemptClaims("a", "p", "g", None, 1, 0, ["Q1"]))


@given(token=st.text(max_size=200) | st.builds(lambda cut, junk: VALID[:cut] + junk, st.integers(0, len(VALID)),
                                                st.text(max_size=20)))
def test_the_token_parser_only_ever_refuses(token: str) -> None:
    with contextlib.suppress(InvalidToken):
        SIGNER.verify(token)


@given(raw=st.text(max_size=60))
def test_identity_rules_only_ever_refuse(raw: str) -> None:
    for rule in (check_full_name, normalize_id_number, normalize_phone, parse_birth_date):
        with contextlib.suppress(IdentityError):
            rule(raw)
