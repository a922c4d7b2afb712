"""Settings: flags over SESSIONS_* environment variables over defaults, each validated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_sessions.config import Settings, from_cli, human_timedelta, problems


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"SESSIONS_{name.upper()}", raising=False)


def settings(args: list[str]) -> Settings:
    return from_cli(args)


def refusal(args: list[str]) -> str:
    """The one line each problem the flags ``args`` have prints as."""
    with pytest.raises(ValidationError) as raised:
        settings(args)
    return "\n".join(problems(raised.value))


def refused_settings(args: list[str]) -> list[str]:
    """The setting each problem the flags ``args`` have is about."""
    with pytest.raises(ValidationError) as raised:
        settings(args)
    return [".".join(str(part) for part in error["loc"]) for error in raised.value.errors()]


def test_defaults_are_the_documented_ones() -> None:
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
    assert got.policy().default_ttl_ms == 48 * 3_600_000
    assert got.max_input_bytes == 1000


def test_flags_win_over_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_ADDRESS", "0.0.0.0:1")

    got = settings(["--address", "127.0.0.1:7000", "--store", "rediss://secure:6380/0"])

    assert (got.address, got.store_url) == ("127.0.0.1:7000", "rediss://secure:6380/0")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--store", "postgres://db"], "store_url"),
        (["--address", "no-port"], "address"),
        (["--default-ttl", "-5"], "default_ttl"),
        (["--max-input-bytes", "0"], "max_input_bytes"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(args: list[str], field: str) -> None:
    assert refused_settings(args) == [field]


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
        ("30 minutes", timedelta(minutes=30)),
        ("1 day", timedelta(days=1)),
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
    assert refused_settings(["--tenant-tokens", '{"Acme Corp": "token"}']) == ["tenant_tokens"]


def test_the_store_is_read_from_sessions_store_url_and_no_other_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORE", "redis://unrelated:6379/0")

    assert settings([]).store_url == "memory://"
    assert settings(["--store", "redis://cache:6379/1"]).store_url == "redis://cache:6379/1"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis:/127.0.0.1:6379/5", "write redis:// with two slashes"),
        ("rediss:cache:6380/0", "write rediss:// with two slashes"),
        ("redis://host:6379/5x", "db '5x' after the host is not a number"),
        ("redis://host:6379/5/6", "db '5/6' after the host is not a number"),
        ("redis://host:6379/16", "db 16 is out of range: Redis has databases 0 to 15"),
        ("redis://:6379/5", "the host is missing"),
        ("redis:///5", "the store URL names no host"),
        ("redis://host:63a9/5", "port '63a9' is not a number"),
        ("redis://host:70000/5", "port 70000 is over 65535"),
        ("redis://host:0/5", "port 0 is not a Redis port"),
        ("redis://::1:6379/5", "an IPv6 address goes in brackets"),
        ("redis://host:6379/5#x", "a store URL has no #fragment"),
        ("redis://host:6379/5?db=6", "query parameter db is set by the URL's path"),
        ("redis://host/5?socket_timeout=1", "query parameter socket_timeout is set by --redis"),
        ("redis://host/5?bogus=1", "unknown query parameter 'bogus'"),
        ("redis://host/5?client_name=a&client_name=b", "'client_name' is given twice"),
        ("redis://host/5?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs TLS"),
        ("rediss://host/5?ssl_cert_reqs=maybe", "ssl_cert_reqs is none, optional or required"),
        ("redis://h1:7000,h2:7001/0", "for a Redis Cluster use redis+cluster://"),
        ("redis+cluster://h1:7000/3", "db 3: a Redis Cluster has only db 0"),
        ("memory://x", "memory:// takes nothing after it"),
        ("ftp://example", "unsupported store: scheme 'ftp'"),
        ("localhost:6379", "unsupported store"),
    ],
)
def test_a_malformed_store_url_is_refused_saying_what_is_wrong(url: str, named: str) -> None:
    got = refusal(["--store", url])

    assert got.startswith("store_url: ")
    assert named in got


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "redis://localhost",
        "redis://cache:6379/15",
        "REDIS://cache:6379/",
        "redis://user:p%40ss%2Fword@cache:6379/1?client_name=sessions",
        "rediss://[::1]:6380/2?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem",
        "redis+cluster://h1:7000, h2:7001,[::1]:7002,h3",
        "rediss+cluster://u:p@h1:7000/0?ssl_check_hostname=false",
    ],
)
def test_a_well_formed_store_url_is_taken(url: str) -> None:
    assert settings(["--store", url]).store_url == url


@pytest.mark.parametrize(
    "url",
    [
        "postgres://admin:s3cret@db",
        "redis://:s3cret@host:bad/0",
        "redis://:s3cret@host/0x",
        "redis://:s3c/ret@host/0",
        "redis://:s3c#ret@host/0",
        "rediss+cluster://:s3cret@h1:7000,,h2:7001",
    ],
)
def test_a_store_url_error_never_shows_the_password(url: str) -> None:
    assert "s3c" not in refusal(["--store", url])


_NOT_HOST_PORT = "give host:port or [IPv6]:port, port 0 to 65535, e.g. 127.0.0.1:50051"


@pytest.mark.parametrize("flag", ["--address", "--metrics-address"])
@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("no-port", "the port is missing"),
        ("host:", "port '' is not a number"),
        (":50051", "the host is missing"),
        ("host:http", "port 'http' is not a number"),
        ("host:65536", "port 65536 is over 65535"),
        ("host:-1", "port '-1' is not a number"),
        ("::1:50051", "an IPv6 address goes in brackets, as in [::1]:50051"),
        ("[::1]", "the port is missing"),
        ("[::1:50051", "the IPv6 address has no closing ]"),
        ("[example]:50051", "[example] is not an IPv6 address"),
        ("a b:50051", "'a b' is not a host name or IP address"),
    ],
)
def test_every_address_setting_refuses_what_is_not_host_and_port_alike(
    flag: str, address: str, why: str
) -> None:
    field = flag.removeprefix("--").replace("-", "_")

    assert refusal([flag, address]) == (
        f"{field}: {address!r} is not host:port ({why}): {_NOT_HOST_PORT}"
    )


@pytest.mark.parametrize("address", ["127.0.0.1:0", "0.0.0.0:65535", "[::1]:9464", "host:1"])
def test_every_address_setting_takes_host_and_port_or_bracketed_ipv6(address: str) -> None:
    got = settings(["--address", address, "--metrics-address", address])

    assert (got.address, got.metrics_address) == (address, address)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--default-ttl", "-5"], "default_ttl: must be at least 1 ms, got -5 seconds"),
        (["--run-timeout", "0"], "run_timeout: must be at least 1 ms, got 0 ms"),
        (["--shutdown-grace=-1.5m"], "shutdown_grace: must be 0 or more, got -1.5 minutes"),
        (["--max-ttl", "4000d"], "max_ttl: must be at most 3650 days, got 4000 days"),
        (["--redis-timeout", "99999999999999d"], "redis_timeout: must be at most 3650 days"),
        (["--max-ttl", "1h"], "default_ttl: 1 day is over the limit of 1 hour (max_ttl)"),
        (
            ["--max-ttl", "2h", "--default-ttl", "1h", "--default-idle-timeout", "3h"],
            "default_idle_timeout: 3 hours is over the limit of 2 hours (max_ttl)",
        ),
        (
            ["--max-message-bytes", "1048576"],
            "max_message_bytes: must be at least 4 MiB, got 1 MiB",
        ),
        (
            ["--max-message-bytes", str(2**31)],
            "max_message_bytes: must be at most 2147483647 bytes, got 2 GiB",
        ),
        (["--max-input-bytes", "0"], "max_input_bytes: must be at least 1 byte, got 0 bytes"),
    ],
)
def test_a_limit_out_of_range_is_refused_in_human_units(args: list[str], problem: str) -> None:
    assert refusal(args) == problem


def test_a_duration_that_is_none_is_refused_saying_what_a_duration_is() -> None:
    assert refusal(["--run-timeout", "5 parsecs"]) == (
        "run_timeout: '5 parsecs' is not a duration: give seconds (90), a number with a unit "
        "(500ms, 30s, 5m, 48h, 2d) or ISO 8601 (PT30M)"
    )


@pytest.mark.parametrize(
    "value",
    [timedelta(days=30), timedelta(hours=1), timedelta(minutes=1.5), timedelta(milliseconds=250)],
)
def test_a_duration_as_errors_and_help_write_it_is_taken_back(value: timedelta) -> None:
    assert settings(["--run-timeout", human_timedelta(value)]).run_timeout == value


def test_a_yes_no_flag_alone_means_yes() -> None:
    got = settings(["--log-calls", "--archive-folded-turns", "--address", "127.0.0.1:1"])

    assert (got.log_calls, got.archive_folded_turns, got.address) == (True, True, "127.0.0.1:1")


@pytest.mark.parametrize(
    "args",
    [
        ["--auth-open-health-and-reflection", "no"],
        ["--auth-open-health-and-reflection=false"],
        ["--auth-open-health-and-reflection", "0"],
    ],
)
def test_a_yes_no_flag_still_takes_a_value(args: list[str]) -> None:
    assert settings(args).auth_open_health_and_reflection is False


def test_the_session_policy_is_built_from_the_settings() -> None:
    got = settings(
        ["--default-ttl", "2d", "--max-ttl", "3d", "--run-timeout", "1.5s", "--context-turns", "7"]
    ).policy()

    assert (got.default_ttl_ms, got.max_ttl_ms, got.run_timeout_ms, got.context_turns) == (
        2 * 86_400_000,
        3 * 86_400_000,
        1500,
        7,
    )


def _agents_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    return path


def test_the_agents_file_is_read_with_the_settings_and_the_agents_setting_wins(
    tmp_path: Path,
) -> None:
    path = _agents_file(tmp_path, '[agents.a]\nkind = "echo"\n\n[agents.b]\nkind = "echo"\n')

    got = settings(["--agents-file", str(path), "--agents", '{"b": {"kind": "weather"}}'])
    path.unlink()  # read once, at startup

    assert {agent_id: spec.kind for agent_id, spec in got.agent_specs().items()} == {
        "a": "echo",
        "b": "weather",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "agents_file: cannot read {path}: No such file or directory"),
        ("[agents.a\n", "agents_file: {path} is not valid TOML: Expected ']'"),
        (
            '[agent.a]\nkind = "echo"\n',
            "agents_file: {path}: unknown top-level key 'agent': the file holds only "
            "[agents.<agent_id>] tables",
        ),
        (
            '[agents.a]\nkind = "nope"\n',
            "agents_file: {path}: agents.a: Input tag 'nope' found using 'kind' does not match",
        ),
        (
            '[agents.a]\nkind = "grpc"\ntls = true\n',
            "agents_file: {path}: agents.a.grpc.target: Field required",
        ),
        (
            '[agents.a]\nkind = "echo"\nmax_reply_bytes = 0\n',
            "agents_file: {path}: agents.a.echo.max_reply_bytes: Input should be greater than 0",
        ),
    ],
    ids=["missing", "not-toml", "unknown-table", "unknown-kind", "missing-field", "bad-field"],
)
def test_a_bad_agents_file_is_a_settings_error_in_one_line(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    path = tmp_path / "agents.toml"
    if text is not None:
        path.write_text(text)

    got = refusal(["--agents-file", str(path)])

    assert got.startswith(problem.format(path=path))
    assert "\n" not in got


def test_a_key_prefix_with_a_hash_tag_is_refused_on_a_cluster() -> None:
    with pytest.raises(ValidationError, match="key_prefix"):
        Settings.model_validate(
            {"store_url": "redis+cluster://127.0.0.1:7000", "key_prefix": "app{x}:"}
        )


def test_a_key_prefix_with_braces_is_taken_on_a_single_redis() -> None:
    made = Settings.model_validate({"store_url": "redis://127.0.0.1:6379/0", "key_prefix": "a{x}:"})

    assert made.key_prefix == "a{x}:"
