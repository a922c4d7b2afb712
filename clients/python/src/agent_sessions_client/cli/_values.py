"""Parsers for option values (durations, labels, JSON); argparse turns their errors into exit 2."""

from __future__ import annotations

import argparse
import json
import math
import re
from datetime import timedelta
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``48h``, ``2d`` or a sum like ``1h30m``; a bare number is seconds."""
    text = text.strip().lower()
    if _NUMBER.fullmatch(text):
        total = float(text)
    elif _DURATION.fullmatch(text):
        total = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    else:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a unit, e.g. 90s, 30m, 48h, 2d"
        )
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"duration {text!r} is too long") from None


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def positive(text: str) -> int:
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def assignment(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as JSON if it is JSON, else as the string it is."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value
