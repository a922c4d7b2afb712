"""Server settings: command-line flags, then ``SESSIONS_*`` environment variables, then defaults."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_sessions.agents.specs import AgentSpec, load_agents_file

STORE_SCHEMES = ("memory", "redis", "rediss")


class Settings(BaseSettings):
    """Serve sessions.v1.SessionService over gRPC.

    Every flag can also be set as an environment variable SESSIONS_<FLAG> (the store
    as SESSIONS_STORE_URL). Durations take seconds (90) or ISO 8601 (PT30M).
    """

    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_",
        cli_kebab_case=True,
        cli_prog_name="session-server",
        extra="forbid",
        populate_by_name=True,
    )

    address: str = Field(
        "127.0.0.1:50051", description="host:port to listen on; port 0 picks a free port"
    )
    store_url: str = Field(
        "memory://",
        validation_alias=AliasChoices("store", "SESSIONS_STORE_URL"),
        description="where sessions live: memory:// (embedded, lost on exit), "
        "redis://[:password@]host:port/db or rediss:// for TLS",
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
    history_turns: int = Field(
        20, ge=0, description="recent turns scanned for the agent's context (completed ones kept)"
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

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in STORE_SCHEMES:
            raise ValueError(
                f"unsupported store {url!r}: use memory://, redis://host:port/db or rediss://…"
            )
        return url

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, address: str) -> str:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"address {address!r} must be host:port, e.g. 127.0.0.1:50051")
        return address

    def agent_specs(self) -> dict[str, AgentSpec]:
        """The agents table: the agents file's, then the ``agents`` setting's entries."""
        specs = load_agents_file(self.agents_file) if self.agents_file else {}
        specs.update(self.agents)
        return specs
