"""Settings: flags over SESSIONS_* environment variables over defaults, each validated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from agent_sessions.config import Settings
from agent_sessions.server import policy_from


def settings(args: list[str]) -> Settings:
    return CliApp.run(Settings, cli_args=args)


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"SESSIONS_{name.upper()}", raising=False)

    got = settings([])

    assert (got.address, got.store_url, got.key_prefix) == (
        "127.0.0.1:50051",
        "memory://",
        "sessions:",
    )
    assert (got.default_ttl, got.default_idle_timeout) == (
        timedelta(hours=24),
        timedelta(minutes=30),
    )
    assert got.default_max_turns == 0


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_STORE_URL", "redis://cache:6379/2")
    monkeypatch.setenv("SESSIONS_DEFAULT_TTL", "PT48H")
    monkeypatch.setenv("SESSIONS_MAX_INPUT_BYTES", "1000")

    got = settings([])

    assert got.store_url == "redis://cache:6379/2"
    assert policy_from(got).default_ttl_ms == 48 * 3_600_000
    assert got.max_input_bytes == 1000


def test_flags_win_over_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_ADDRESS", "0.0.0.0:1")

    got = settings(["--address", "127.0.0.1:7000", "--store", "rediss://secure:6380/0"])

    assert (got.address, got.store_url) == ("127.0.0.1:7000", "rediss://secure:6380/0")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--store", "postgres://db"], "store"),
        (["--address", "no-port"], "address"),
        (["--default-ttl", "-5"], "default_ttl"),
        (["--max-input-bytes", "0"], "max_input_bytes"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(args: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        settings(args)

    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("500ms", timedelta(milliseconds=500)),
        ("30m", timedelta(minutes=30)),
        ("48h", timedelta(hours=48)),
        ("2d", timedelta(days=2)),
        ("PT30M", timedelta(minutes=30)),
    ],
)
def test_durations_take_seconds_units_or_iso_8601(text: str, expected: timedelta) -> None:
    assert settings(["--run-timeout", text]).run_timeout == expected


def test_tenant_tokens_come_from_the_environment_and_name_their_tenants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSIONS_TENANT_TOKENS", '{"acme": "token-a", "globex": "token-b"}')

    got = settings([])

    assert {k: v.get_secret_value() for k, v in got.tenant_tokens.items()} == {
        "acme": "token-a",
        "globex": "token-b",
    }
    assert "token-a" not in repr(got)


def test_a_badly_named_tenant_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        settings(["--tenant-tokens", '{"Acme Corp": "token"}'])

    assert "tenant" in str(raised.value)
