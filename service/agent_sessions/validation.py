"""Request rules: what ids, inputs, durations, labels and state may look like."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from agent_sessions.errors import InvalidArgument
from agent_sessions.model import JsonValue

MAX_ID_LENGTH = 128
MAX_LABELS = 64
MAX_LABEL_VALUE_LENGTH = 256

# Session ids go into Redis key names between separators, so they are kept URL-safe;
# user ids carry the Redis Cluster hash tag, so they may not contain braces.
_SESSION_ID = re.compile(r"[A-Za-z0-9._~-]+")
_USER_ID = re.compile(r"[^\s{}]+")
_AGENT_ID = re.compile(r"[A-Za-z0-9._~:/@-]+")
_REQUEST_ID = re.compile(r"\S+")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,62}")


def _identifier(field: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(
            field, f"is {len(value)} characters long; the limit is {MAX_ID_LENGTH}"
        )
    if not pattern.fullmatch(value):
        raise InvalidArgument(field, f"may contain only {allowed}")
    return value


def user_id(value: str) -> str:
    return _identifier("user_id", value, _USER_ID, "characters other than whitespace, '{' and '}'")


def session_id(value: str) -> str:
    return _identifier("session_id", value, _SESSION_ID, "letters, digits and . _ ~ -")


def agent_id(value: str) -> str:
    return _identifier("agent_id", value, _AGENT_ID, "letters, digits and . _ ~ : / @ -")


def request_id(value: str) -> str:
    if not value:
        return value
    return _identifier("request_id", value, _REQUEST_ID, "characters other than whitespace")


def run_input(value: str, *, max_bytes: int) -> str:
    if not value.strip():
        raise InvalidArgument("input", "is required: send the user's message as text")
    size = len(value.encode())
    if size > max_bytes:
        raise InvalidArgument("input", f"is {size} bytes of UTF-8; the limit is {max_bytes} bytes")
    return value


def duration_ms(field: str, value: int, *, max_ms: int) -> int:
    if value <= 0:
        raise InvalidArgument(field, f"must be a positive duration, got {value} ms")
    if value > max_ms:
        raise InvalidArgument(field, f"is {value} ms; the limit is {max_ms} ms")
    return value


def max_turns(value: int) -> int:
    if value < 0:
        raise InvalidArgument("max_turns", f"must be 0 (unlimited) or positive, got {value}")
    return value


def labels(value: Mapping[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise InvalidArgument("labels", f"has {len(value)} entries; the limit is {MAX_LABELS}")
    for key, text in value.items():
        if not _LABEL_KEY.fullmatch(key):
            raise InvalidArgument(
                f"labels[{key!r}]",
                "keys are 1-63 characters: a lowercase letter, then lowercase letters, "
                "digits and _ . -",
            )
        if len(text) > MAX_LABEL_VALUE_LENGTH:
            raise InvalidArgument(
                f"labels[{key!r}]", f"value is longer than {MAX_LABEL_VALUE_LENGTH} characters"
            )
    return dict(value)


def state(
    value: dict[str, JsonValue], *, max_bytes: int, field: str = "state"
) -> dict[str, JsonValue]:
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > max_bytes:
        raise InvalidArgument(field, f"is {size} bytes as JSON; the limit is {max_bytes} bytes")
    return value


def page_size(value: int, *, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must not be negative, got {value}")
    if value == 0:
        return default
    return min(value, maximum)
