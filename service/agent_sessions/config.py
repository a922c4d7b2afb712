"""Server settings: command-line flags, then ``SESSIONS_*`` environment variables, then defaults."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent_sessions.agents.specs import AgentSpec, load_agents_file

STORE_SCHEMES = ("memory", "redis", "rediss", "redis+cluster", "rediss+cluster")
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> object:
    """Seconds (``90``) or a number with a unit (``500ms``, ``30s``, ``5m``, ``48h``, ``2d``)
    as a timedelta; anything else (ISO 8601 ``PT30M``, a timedelta) is left to pydantic."""
    if isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"]])
    return value


class Settings(BaseSettings):
    """Serve agentsessions.sessions.v1.SessionService over gRPC.

    Every flag can also be set as an environment variable SESSIONS_<FLAG> (the store
    as SESSIONS_STORE_URL). Durations take seconds (90), a unit (500ms, 30s, 5m, 48h,
    2d) or ISO 8601 (PT30M).
    """

    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_",
        cli_kebab_case=True,
        cli_prog_name="session-server",
        extra="forbid",
        populate_by_name=True,
        # Validation errors must not echo what was given: it may be a bearer token.
        hide_input_in_errors=True,
    )

    address: str = Field(
        "127.0.0.1:50051", description="host:port to listen on; port 0 picks a free port"
    )
    workers: int = Field(
        1,
        ge=1,
        description="server processes sharing the address (SO_REUSEPORT), each with its own "
        "event loop, store connections and agents: about one per core; more than 1 needs a "
        "Redis store and a fixed port",
    )
    store_url: str = Field(
        "memory://",
        validation_alias=AliasChoices("store", "SESSIONS_STORE_URL"),
        description="where sessions live: memory:// (embedded, lost on exit), "
        "redis://[:password@]host:port/db or rediss:// for TLS, or a Redis Cluster: "
        "redis+cluster://[:password@]host:port[,host:port...] (any of its nodes; "
        "rediss+cluster:// for TLS)",
    )
    default_agent: str | None = Field(
        None,
        description="the agent that answers any agent_id the agents table does not name; "
        "unset, such ids are refused (built-in agents: echo, weather)",
    )
    agents: dict[str, AgentSpec] = Field(
        default_factory=dict,
        description='the agents table as JSON: {"<agent_id>": {"kind": "openai", ...}}; '
        "kinds: echo, weather, openai, grpc, plugin",
    )
    agents_file: Path | None = Field(
        None, description="a TOML file of [agents.<agent_id>] tables (the agents setting wins)"
    )
    key_prefix: str = Field("sessions:", min_length=1, description="prefix of every Redis key")
    default_ttl: timedelta = Field(
        timedelta(hours=24), gt=timedelta(0), description="session lifetime when none is asked for"
    )
    default_idle_timeout: timedelta = Field(
        timedelta(minutes=30), gt=timedelta(0), description="idle timeout when none is asked for"
    )
    default_max_turns: int = Field(0, ge=0, description="max completed turns; 0 is unlimited")
    max_ttl: timedelta = Field(
        timedelta(days=30), gt=timedelta(0), description="the longest ttl or idle timeout allowed"
    )
    max_input_bytes: int = Field(
        32 * 1024, gt=0, description="the largest Run input, in UTF-8 bytes"
    )
    max_state_bytes: int = Field(
        64 * 1024, gt=0, description="the largest session state, as JSON bytes"
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024,
        ge=4 * 1024 * 1024,
        description="the largest gRPC message received or sent (ImportSession carries whole "
        "histories)",
    )
    max_sessions_per_user: int = Field(
        10_000, ge=0, description="live sessions one user may have; 0 is unlimited"
    )
    max_concurrent_runs: int = Field(
        1_000,
        gt=0,
        description="turns this process runs at once (per tenant, with tenants); more are "
        "RESOURCE_EXHAUSTED",
    )
    context_turns: int = Field(
        20,
        ge=0,
        le=1000,
        description="the agent's context window: the completed turns among this many most "
        "recent ones go to the agent, with the summary and the state",
    )
    run_timeout: timedelta = Field(
        timedelta(minutes=5), gt=timedelta(0), description="the longest an agent may take a turn"
    )
    shutdown_grace: timedelta = Field(
        timedelta(seconds=10),
        ge=timedelta(0),
        description="how long running calls may finish after SIGTERM/SIGINT",
    )
    health_check_interval: timedelta = Field(
        timedelta(seconds=1), gt=timedelta(0), description="how often the store is pinged"
    )
    redis_timeout: timedelta = Field(
        timedelta(seconds=5), gt=timedelta(0), description="Redis connect and read timeout"
    )
    redis_max_connections: int = Field(64, gt=0, description="Redis connection pool size")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="logging level"
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="log lines as text, or json: one object per line (time, level, logger, "
        "message and any extra fields)",
    )
    log_calls: bool = Field(
        False,
        description="log one line per SessionService call: method, status, duration, user, "
        "session and request ids (never what users said)",
    )
    log_conversation_text: bool = Field(
        False,
        description="for debugging only: add each Run's input to its call log line "
        "(conversation text then reaches the logs)",
    )
    metrics_address: str | None = Field(
        None,
        description="host:port to serve Prometheus metrics on, at /metrics (e.g. "
        "127.0.0.1:9464); unset, no metrics are served",
    )
    otel_traces: Literal["off", "otlp", "console"] = Field(
        "off",
        description="OpenTelemetry traces (needs the otel extra): otlp sends them to the "
        "collector the OTEL_EXPORTER_OTLP_* variables name, console prints them as JSON",
    )
    tls_cert_file: FilePath | None = Field(
        None,
        description="PEM certificate (chain) the server presents; with --tls-key-file the "
        "server speaks TLS only",
    )
    tls_key_file: FilePath | None = Field(
        None, validate_default=True, description="PEM private key of --tls-cert-file"
    )
    tls_client_ca_file: FilePath | None = Field(
        None,
        description="PEM CA certificate(s) for client certificates: set, every client must "
        "present one they signed (mutual TLS); needs --tls-cert-file",
    )
    # NoDecode: the environment may hold a comma-separated list, not only JSON.
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="bearer tokens of the calling services, comma-separated or a JSON list: "
        "set, every call needs 'authorization: Bearer <token>' (prefer SESSIONS_AUTH_TOKENS: "
        "flags show in ps)",
    )
    auth_open_health_and_reflection: bool = Field(
        True,
        description="health checks and reflection need no token (false: protect them too)",
    )
    tenant_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='calling services as tenants, JSON {"<tenant>": "<token>"}: a call with a '
        "tenant's token sees only that tenant's sessions (prefer SESSIONS_TENANT_TOKENS)",
    )

    keep_last_turns: int = Field(
        20, ge=0, description="turns a compression keeps in the history when not told"
    )
    max_history_turns: int = Field(
        500,
        ge=0,
        description="a history longer than this is compressed after the turn that made it so, "
        "off the Run's response path (0: never)",
    )
    max_history_bytes: int = Field(
        2 * 1024 * 1024,
        ge=0,
        description="likewise for a history whose inputs and outputs exceed this many bytes "
        "(0: never)",
    )
    max_summary_bytes: int = Field(
        8 * 1024, gt=0, description="the longest summary a compression writes, in UTF-8 bytes"
    )
    archive_folded_turns: bool = Field(
        False,
        description="keep compressed turns in an archive key (expiring with the session), "
        "readable with ListTurns include_archived, for audit",
    )
    compress_turns_over_bytes: int = Field(
        512,
        ge=0,
        description="finished turns of this many bytes or more are stored zstd-compressed in "
        "Redis (0: never)",
    )

    @field_validator("tenant_tokens")
    @classmethod
    def _tenant_names(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, token in tokens.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
                raise ValueError(
                    f"tenant {name!r}: names are 1-63 lowercase letters, digits, _ and -"
                )
            if not token.get_secret_value().strip():
                raise ValueError(f"tenant {name!r}: its token is empty")
        return tokens

    @field_validator(
        "default_ttl",
        "default_idle_timeout",
        "max_ttl",
        "run_timeout",
        "shutdown_grace",
        "health_check_interval",
        "redis_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in STORE_SCHEMES:
            raise ValueError(
                f"unsupported store {url!r}: use memory://, redis://host:port/db, rediss://…, "
                "redis+cluster://host:port[,host:port...] or rediss+cluster://…"
            )
        if parts.scheme.endswith("+cluster"):
            hosts = parts.netloc.rpartition("@")[2].split(",")
            if not all(host.strip() for host in hosts):
                # Not echoed: the URL may hold a password.
                raise ValueError(
                    "the cluster store URL names no node: use "
                    "redis+cluster://host:port[,host:port...]"
                )
        return url

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, address: str) -> str:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"address {address!r} must be host:port, e.g. 127.0.0.1:50051")
        return address

    @model_validator(mode="after")
    def _workers_can_share(self) -> Settings:
        """What ``--workers`` > 1 cannot work with; all of it is known before any process starts."""
        if self.workers == 1:
            return self
        flag = f"--workers {self.workers}"
        if urlsplit(self.store_url).scheme == "memory":
            raise ValueError(
                f"{flag} needs a shared store: memory:// lives inside one process, so each "
                "worker would hold its own sessions; use --store redis://host:port/db, or "
                "--workers 1"
            )
        if int(self.address.rpartition(":")[2]) == 0:
            raise ValueError(
                f"{flag} needs a fixed port: with port 0 each worker would listen on a port "
                "of its own"
            )
        # Refused rather than half-working: the workers would race for one metrics port,
        # and each process's counters are its own. Serving their sum takes prometheus
        # multiprocess mode (values in files under PROMETHEUS_MULTIPROC_DIR, a mode for
        # every gauge, dead workers' files cleaned up, the sum served by the parent),
        # which is not built yet.
        if self.metrics_address is not None:
            raise ValueError(
                "metrics with --workers > 1 are not supported yet (each process counts only "
                "its own calls, and they would share one metrics port): run one process per "
                "container or pod (--workers 1) and scrape each, or drop --metrics-address"
            )
        return self

    @field_validator("metrics_address")
    @classmethod
    def _metrics_host_and_port(cls, address: str | None) -> str | None:
        if address is None:
            return None
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"metrics address {address!r} must be host:port, e.g. 127.0.0.1:9464")
        return address

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file")
    @classmethod
    def _readable_pem(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        try:
            pem = path.read_bytes()
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror}") from None
        if b"-----BEGIN " not in pem:
            raise ValueError(f"{path} is not a PEM file")
        return path

    @field_validator("tls_key_file")
    @classmethod
    def _cert_and_key_together(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert_file" not in info.data:  # the certificate itself was refused
            return key
        if (info.data["tls_cert_file"] is None) != (key is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return key

    @field_validator("tls_client_ca_file")
    @classmethod
    def _client_ca_needs_tls(cls, ca: Path | None, info: ValidationInfo) -> Path | None:
        if ca is not None and info.data.get("tls_cert_file") is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return ca

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _token_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("auth_tokens")
    @classmethod
    def _usable_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        # The token itself is never part of the message: errors are printed.
        for number, token in enumerate(tokens, 1):
            secret = token.get_secret_value()
            if not secret or not secret.isascii() or not secret.isprintable() or " " in secret:
                raise ValueError(f"token {number} must be non-empty printable ASCII without spaces")
        return tokens

    def agent_specs(self) -> dict[str, AgentSpec]:
        """The agents table: the agents file's, then the ``agents`` setting's entries."""
        specs = load_agents_file(self.agents_file) if self.agents_file else {}
        specs.update(self.agents)
        return specs
