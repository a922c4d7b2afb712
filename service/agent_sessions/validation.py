"""Request rules: what ids, inputs, durations, labels and state may look like."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from agent_sessions import state_json
from agent_sessions.errors import InvalidArgument, quote
from agent_sessions.model import Item, ItemType, JsonValue, TurnStatus

MAX_ID_LENGTH = 128
MAX_LABELS = 64
MAX_LABEL_VALUE_LENGTH = 256
# Objects and arrays nested in a session's state, the state itself counting as 1: the
# limit state_json reads JSON text with, applied to what agents write too.
MAX_STATE_DEPTH = state_json.MAX_DEPTH

# Session ids go into Redis key names between separators, so they are kept URL-safe;
# user ids carry the Redis Cluster hash tag, so they may not contain braces.
_SESSION_ID = re.compile(r"[A-Za-z0-9._~-]+")
_USER_ID = re.compile(r"[^\s{}]+")
_AGENT_ID = re.compile(r"[A-Za-z0-9._~:/@-]+")
_REQUEST_ID = re.compile(r"\S+")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,62}")
# App names go into Redis key names between separators, before the user's hash tag.
_APP = re.compile(r"[A-Za-z0-9._-]{1,63}")


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


def user_id(value: str, *, field: str = "user_id") -> str:
    return _identifier(field, value, _USER_ID, "characters other than whitespace, '{' and '}'")


def session_id(value: str, *, field: str = "session_id") -> str:
    return _identifier(field, value, _SESSION_ID, "letters, digits and . _ ~ -")


def agent_id(value: str, *, field: str = "agent_id") -> str:
    return _identifier(field, value, _AGENT_ID, "letters, digits and . _ ~ : / @ -")


def app(value: str, *, field: str = "app") -> str:
    """An app name, or "" for the default app."""
    if value and not _APP.fullmatch(value):
        raise InvalidArgument(
            field, f"{quote(value)} is not an app name: 1-63 letters, digits and . _ -"
        )
    return value


def request_id(value: str, *, field: str = "request_id") -> str:
    if not value:
        return value
    return _identifier(field, value, _REQUEST_ID, "characters other than whitespace")


def run_input(value: str, *, max_bytes: int, field: str = "input") -> str:
    if not value.strip():
        raise InvalidArgument(field, "is required: send the user's message as text")
    size = len(value.encode())
    if size > max_bytes:
        raise InvalidArgument(field, f"is {size} bytes of UTF-8; the limit is {max_bytes} bytes")
    return value


_FINISHED = (TurnStatus.COMPLETED, TurnStatus.FAILED, TurnStatus.CANCELLED)


def summary(value: str, *, max_bytes: int, field: str = "snapshot.summary") -> str:
    size = len(value.encode())
    if size > max_bytes:
        raise InvalidArgument(
            field, f"is {size} bytes of UTF-8; the limit is {max_bytes} bytes: shorten it"
        )
    return value


def finished_turn_status(field: str, value: int) -> TurnStatus:
    """The status of an imported turn, given by its number: COMPLETED, FAILED or CANCELLED."""
    if value not in _FINISHED:
        known = {int(status): status.name for status in TurnStatus}
        name = known.get(value, "UNSPECIFIED" if value == 0 else f"unknown ({value})")
        raise InvalidArgument(
            field,
            f"is {name}; only finished turns can be imported: COMPLETED, FAILED or CANCELLED",
        )
    return TurnStatus(value)


def duration_ms(field: str, value: int, *, max_ms: int) -> int:
    if value <= 0:
        raise InvalidArgument(field, f"must be a positive duration, got {value} ms")
    if value > max_ms:
        raise InvalidArgument(
            field, f"{human_duration(value)} is over the limit of {human_duration(max_ms)}"
        )
    return value


_UNITS = (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000), ("seconds", 1000))


def human_duration(ms: int) -> str:
    """``ms`` in the largest unit it fills: ``30 days``, ``1.5 minutes``, ``250 ms``."""
    for name, size in _UNITS:
        if ms >= size:
            count = f"{ms // size}" if ms % size == 0 else f"{ms / size:.1f}"
            return f"{count} {name.removesuffix('s') if count == '1' else name}"
    return f"{ms} ms"


def max_turns(value: int, *, field: str = "max_turns") -> int:
    if value < 0:
        raise InvalidArgument(field, f"must be 0 (unlimited) or positive, got {value}")
    return value


def labels(value: Mapping[str, str], *, field: str = "labels") -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise InvalidArgument(field, f"has {len(value)} entries; the limit is {MAX_LABELS}")
    for key, text in value.items():
        if not _LABEL_KEY.fullmatch(key):
            raise InvalidArgument(
                f"{field}[{quote(key)}]",
                "keys are 1-63 characters: a lowercase letter, then lowercase letters, "
                "digits and _ . -",
            )
        if len(text) > MAX_LABEL_VALUE_LENGTH:
            raise InvalidArgument(
                f"{field}[{quote(key)}]",
                f"value is longer than {MAX_LABEL_VALUE_LENGTH} characters",
            )
    return dict(value)


def state(
    value: dict[str, JsonValue], *, max_bytes: int, field: str = "state"
) -> dict[str, JsonValue]:
    depth = _depth(value)
    if depth > MAX_STATE_DEPTH:
        raise InvalidArgument(
            field,
            f"nests objects and arrays {depth} levels deep; the limit is {MAX_STATE_DEPTH}",
        )
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InvalidArgument(
            field, "holds a number that is NaN or infinite; state numbers must be finite"
        ) from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidArgument(
            field, "holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not text"
        ) from None
    if size > max_bytes:
        raise InvalidArgument(field, f"is {size} bytes as JSON; the limit is {max_bytes} bytes")
    return value


def _depth(value: JsonValue) -> int:
    """How deep objects and arrays nest in ``value`` (a scalar is 0); not recursive."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        children: Iterable[JsonValue]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


def page_size(value: int, *, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must not be negative, got {value}")
    if value == 0:
        return default
    return min(value, maximum)


_ITEM_TEXT_FIELDS = ("type_name", "role", "name", "call_id", "item_id")


def items(
    values: Sequence[Item],
    *,
    max_items: int,
    max_payload_bytes: int,
    field: str,
) -> None:
    """Items as a write takes them: known types, valid JSON payloads, short labels, ids
    unique within the write."""
    if len(values) > max_items:
        raise InvalidArgument(field, f"has {len(values)} items; the limit is {max_items}")
    seen: set[str] = set()
    for position, item in enumerate(values):
        at = f"{field}[{position}]"
        if item.type not in _KNOWN_ITEM_TYPES:
            raise InvalidArgument(
                f"{at}.type", "is required: MESSAGE, TOOL_CALL, TOOL_RESULT, REASONING or OTHER"
            )
        if item.type is ItemType.OTHER and not item.type_name:
            raise InvalidArgument(f"{at}.type_name", "is required for an item of type OTHER")
        for name in _ITEM_TEXT_FIELDS:
            text = getattr(item, name)
            if len(text) > MAX_ID_LENGTH:
                raise InvalidArgument(
                    f"{at}.{name}", f"is {len(text)} characters long; the limit is {MAX_ID_LENGTH}"
                )
        size = len(item.payload_json.encode())
        if size > max_payload_bytes:
            raise InvalidArgument(
                f"{at}.payload_json", f"is {size} bytes; the limit is {max_payload_bytes} bytes"
            )
        _json_text(item.payload_json, field=f"{at}.payload_json")
        if item.item_id:
            if item.item_id in seen:
                raise InvalidArgument(f"{at}.item_id", "repeats an item_id of this write")
            seen.add(item.item_id)


_KNOWN_ITEM_TYPES = frozenset(ItemType)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_text(text: str, *, field: str) -> None:
    if not text.strip():
        raise InvalidArgument(field, "is required: the item as JSON text")
    try:
        json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidArgument(field, "nests too deep to read") from None
    except ValueError as error:
        if "integer string conversion" in str(error):  # Python's 4,300-digit limit
            raise InvalidArgument(
                field, "holds an integer of more than 4300 digits; send it as a string"
            ) from None
        raise InvalidArgument(field, f"is not valid JSON ({str(error)[:80]})") from None
