"""Opaque page tokens that remember where a listing stopped and what it listed."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from agent_sessions.errors import InvalidArgument


def encode(query: dict[str, Any], position: dict[str, Any]) -> str:
    raw = json.dumps({"q": query, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, query: dict[str, Any]) -> dict[str, Any]:
    """Returns the position saved in ``token``, which must come from the same query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        saved = json.loads(raw)
        position = saved["p"]
        same_query = saved["q"] == query
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "is not a token this service issued") from None
    if not same_query or not isinstance(position, dict):
        raise InvalidArgument(
            "page_token", "belongs to a different query: repeat the other fields of the first call"
        )
    return position


def integer(position: dict[str, Any], key: str, *, minimum: int) -> int:
    """A whole number saved in a position; a forged or damaged token is INVALID_ARGUMENT."""
    value = position.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**53:
        raise InvalidArgument("page_token", "is not a token this service issued")
    return value


def text(position: dict[str, Any], key: str) -> str:
    """A string saved in a position; a forged or damaged token is INVALID_ARGUMENT."""
    value = position.get(key)
    if not isinstance(value, str):
        raise InvalidArgument("page_token", "is not a token this service issued")
    return value
