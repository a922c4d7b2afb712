"""Parsers for option values (durations, labels, JSON); argparse turns their errors into exit 2."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
from datetime import timedelta
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
# A DNS name or an IPv4 address: letters, digits, dots, hyphens (and underscores, which
# resolvers accept in names like _grpc.internal).
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_BRACKETED = re.compile(r"\[([^\]]*)\]:(.*)")
_ADDRESS_FORMS = "HOST:PORT (e.g. 127.0.0.1:50051), [IPV6]:PORT (e.g. [::1]:50051) or unix:PATH"
_QUOTED = 40  # characters of a rejected value quoted back
# An app name as the contract has it (Session.app); empty names the default app.
_APP = re.compile(r"[A-Za-z0-9._-]{1,63}")


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


def app(text: str) -> str:
    """An app name (1-63 letters, digits, ``.``, ``_``, ``-``), or "" for the default app."""
    if text and not _APP.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid app {_quoted(text)}: expected 1-63 letters, digits, '.', '_' or '-' "
            "(empty for the default app)"
        )
    return text


def address(text: str) -> str:
    """A server address as gRPC dials it: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``.

    Returned as given; rejected with the form expected, rather than left for gRPC to
    dial port 443 for ``localhost`` or fail to resolve ``http://...`` as a host name.
    """
    problem = _address_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(
            f"invalid address {_quoted(text)} ({problem}): expected {_ADDRESS_FORMS}"
        )
    return text


def _address_problem(text: str) -> str | None:
    if text.startswith("unix:"):
        return None if text.removeprefix("unix:").removeprefix("//") else "no socket path"
    if not text:
        return "empty"
    if "://" in text:
        return "a URL: drop the scheme"
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port = bracketed.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "no IPv6 address in the brackets"
    elif text.startswith("["):
        return "no port after the brackets"
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            return "no port"
        if ":" in host:
            return "an IPv6 address goes in brackets"
        if not host:
            return "no host"
        if not _HOST.fullmatch(host):
            return "not a host name or IPv4 address"
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return "the port must be a number from 1 to 65535"
    return None


def _quoted(text: str) -> str:
    # Quote back no more than a short, escaped prefix of what was given.
    return repr(text) if len(text) <= _QUOTED else repr(text[:_QUOTED]) + "..."
