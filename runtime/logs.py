"""structlog set-up: JSON lines on stderr, level from settings, personal data masked on every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# A CCCD (12 digits) or a Vietnamese phone (0 or +84 then 9 digits) anywhere in a logged string.
_CCCD = re.compile(r"(?<!\d)\d{9}(\d{3})(?!\d)")
_PHONE = re.compile(r"(?<![\d+])(?:\+84|0)(\d{3})\d{3}(\d{3})(?!\d)")


def mask_text(text: str) -> str:
    return _PHONE.sub(r"0\1***\2", _CCCD.sub(r"*********\1", text))


def mask_personal_data(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no plain CCCD or phone number leaves in a log line."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_text(value)
    return event


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                    mask_personal_data, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True)
