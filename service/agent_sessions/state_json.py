"""Session state as JSON text, read and written exactly.

The contract carries state as the text of a JSON object rather than as a protobuf
Struct, whose numbers are all doubles: here ``1`` stays an int, ``2**53 + 1`` keeps its
digits and ``1.0`` stays a float. NaN and infinities are not JSON, and a ``1e999`` that
Python would read as infinity is refused too, so what is stored can always be written
back out as standard JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from agent_sessions.model import JsonValue

MAX_DEPTH = 32
"""Objects and arrays nested in a state, the state object itself counting as 1."""

MAX_INT_DIGITS = 4300
"""Python's own limit on converting decimal text to int (sys.get_int_max_str_digits)."""

_KEY_QUOTE_CHARS = 40


class StateJsonError(ValueError):
    """The text is not a JSON object that can be kept exactly; ``path`` says where."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


class _NotFinite:
    """Stands in for NaN or an infinity while the text is parsed, so its key can be named."""


_NOT_FINITE = _NotFinite()


def _constant(_name: str) -> _NotFinite:
    return _NOT_FINITE


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NOT_FINITE


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _IntTooLong
    return int(text)


class _IntTooLong(ValueError):
    pass


def parse_object(text: str, *, field: str) -> dict[str, JsonValue]:
    """The JSON object in ``text`` (``""`` is ``{}``), or :class:`StateJsonError`."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _IntTooLong:
        raise StateJsonError(
            field, f"holds an integer of more than {MAX_INT_DIGITS} digits"
        ) from None
    except RecursionError:
        raise StateJsonError(
            field, f"nests objects and arrays more than {MAX_DEPTH} levels deep"
        ) from None
    except ValueError as error:
        raise StateJsonError(field, f"is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise StateJsonError(
            field, f"must be a JSON object ({{...}}), not a {type(value).__name__}"
        )
    for path, item, depth in _walk(value, field):
        if item is _NOT_FINITE:
            raise StateJsonError(path, "is NaN or infinite; JSON numbers must be finite")
        if depth > MAX_DEPTH:
            raise StateJsonError(
                path, f"nests objects and arrays {depth} levels deep; the limit is {MAX_DEPTH}"
            )
        if isinstance(item, str) and not _is_unicode(item):
            raise StateJsonError(
                path, "holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not text"
            )
        if isinstance(item, dict) and not all(_is_unicode(key) for key in item):
            raise StateJsonError(
                path, "has a key with a lone surrogate (an unpaired \\ud800-\\udfff escape)"
            )
    return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def dump(value: dict[str, JsonValue]) -> str:
    """Compact JSON text of a state; ``""`` for an empty one, as the contract reads it."""
    if not value:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _walk(root: JsonValue, field: str) -> Iterator[tuple[str, JsonValue, int]]:
    """Every value under ``root`` with its path and the depth of containers it sits in."""
    pending: list[tuple[str, JsonValue, int]] = [(field, root, 0)]
    while pending:
        path, item, depth = pending.pop()
        if isinstance(item, dict):
            yield path, item, depth + 1
            pending.extend(
                (f"{path}[{_quoted(key)}]", child, depth + 1) for key, child in item.items()
            )
        elif isinstance(item, list):
            yield path, item, depth + 1
            pending.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(item))
        else:
            yield path, item, depth


def _quoted(key: str) -> str:
    if len(key) > _KEY_QUOTE_CHARS:
        return json.dumps(key[:_KEY_QUOTE_CHARS] + "…", ensure_ascii=True)
    return json.dumps(key, ensure_ascii=True)
