"""Server settings: command-line flags, then ``SESSIONS_*`` environment variables, then defaults.

Every default lives here, on :class:`Settings`; the session rules are built from them in
one place (:meth:`Settings.policy`), and the agents file is read and validated with the
rest, so that every mistake in the configuration is a one-line startup error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from argparse import ArgumentParser
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qsl

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    FilePath,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, CliApp, CliSettingsSource, NoDecode, SettingsConfigDict

from agent_sessions.agents.specs import AgentSpec, load_agents_file
from agent_sessions.errors import quote
from agent_sessions.session_events import EventWindow
from agent_sessions.sessions import SessionPolicy
from agent_sessions.validation import human_duration

STORE_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
_TLS_SCHEMES = ("rediss", "rediss+cluster", "rediss+sentinel")
# A Redis server has 16 databases (0 to 15) unless its `databases` setting says otherwise;
# a number past them is far more often a typo than such a server.
MAX_REDIS_DB = 15
REDIS_PORT = 6379
SENTINEL_PORT = 26379

# Query parameters a store URL may carry: what redis-py reads there and no setting owns.
_QUERY_PARAMETERS = ("client_name",)
# The sentinels' own credentials, where they differ from the data nodes' (the URL's).
_SENTINEL_QUERY_PARAMETERS = ("sentinel_username", "sentinel_password")
_TLS_QUERY_PARAMETERS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
# redis-py would take these from the URL over the settings, a second source for each.
_SET_ELSEWHERE = {
    "db": "the URL's path (/db)",
    "socket_timeout": "--redis-timeout",
    "socket_connect_timeout": "--redis-timeout",
    "timeout": "--redis-timeout",
    "max_connections": "--redis-max-connections",
}
_YES_NO = {"true", "false", "yes", "no", "on", "off", "1", "0"}

_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "second", "seconds"), 1),
    **dict.fromkeys(("m", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
# The units as help and errors write them too (``1 day``, ``30 minutes``), so that what
# the server says can be given back to it; the longest spellings first.
_DURATION = re.compile(
    r"(?P<number>-?\d+(?:\.\d+)?)\s*(?P<unit>"
    + "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))
    + ")?"
)
# Longer is a typo, and would overflow the timers and timeouts it becomes.
LONGEST_DURATION = timedelta(days=3650)
_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)
# gRPC takes message sizes as a C int.
MAX_GRPC_MESSAGE_BYTES = 2**31 - 1


def human_bytes(size: int) -> str:
    """``size`` in the largest binary unit it fills whole: ``4 MiB``, ``32 KiB``, ``500 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return "1 byte" if size == 1 else f"{size} bytes"


def human_timedelta(value: timedelta) -> str:
    """``value`` as errors and --help write it: ``30 days``, ``1.5 minutes``, ``-5 seconds``
    (which the duration settings take back)."""
    ms = round(value.total_seconds() * 1000)
    return f"-{human_duration(-ms)}" if ms < 0 else human_duration(ms)


def parse_duration(value: object) -> object:
    """Seconds (``90``) or a number with a unit (``500ms``, ``30s``, ``5m``, ``48h``, ``2d``,
    ``30 minutes``, ``1 day``) as a timedelta; ISO 8601 (``PT30M``) and timedeltas are left
    to pydantic. Raises ``ValueError`` for anything else."""
    if not isinstance(value, str):
        return value
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        try:
            return _TIMEDELTA.validate_python(value.strip())
        except ValidationError:
            raise ValueError(
                f"{quote(value)} is not a duration: give seconds (90), a number with a unit "
                "(500ms, 30s, 5m, 48h, 2d) or ISO 8601 (PT30M)"
            ) from None
    try:
        return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"] or "s"])
    except OverflowError:
        raise ValueError(f"must be at most {human_timedelta(LONGEST_DURATION)}") from None


def _between(low: timedelta, high: timedelta = LONGEST_DURATION) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value < low:
            least = "0 or more" if not low else f"at least {human_timedelta(low)}"
            raise ValueError(f"must be {least}, got {human_timedelta(value)}")
        if value > high:
            raise ValueError(
                f"must be at most {human_timedelta(high)}, got {human_timedelta(value)}"
            )
        return value

    return AfterValidator(check)


# Durations: a positive one is at least a millisecond, the unit the session rules count in.
Duration = Annotated[timedelta, BeforeValidator(parse_duration), _between(timedelta(0))]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(parse_duration), _between(timedelta(milliseconds=1))
]


def _byte_size(low: int, high: int | None = None) -> AfterValidator:
    def check(size: int) -> int:
        if size < low:
            raise ValueError(f"must be at least {human_bytes(low)}, got {human_bytes(size)}")
        if high is not None and size > high:
            raise ValueError(f"must be at most {human_bytes(high)}, got {human_bytes(size)}")
        return size

    return AfterValidator(check)


def split_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` or ``[IPv6]:port`` as the host (without brackets) and the port, 0 to
    65535; with a ``default_port`` the port may be left out. Raises ``ValueError`` saying
    what is wrong."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("the IPv6 address has no closing ]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"[{host}] is not an IPv6 address") from None
    else:
        if text.count(":") > 1:
            raise ValueError("an IPv6 address goes in brackets, as in [::1]:50051")
        host, _, _ = text.partition(":")
        rest = text[len(host) :]
        if not host:
            raise ValueError("the host is missing")
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{quote(host)} is not a host name or IP address")
    if not rest:
        if default_port is None:
            raise ValueError("the port is missing")
        return host, default_port
    if not rest.startswith(":"):
        raise ValueError(f"{quote(rest)} follows the host where :port should")
    port = rest[1:]
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"port {quote(port)} is not a number")
    if int(port) > 65535:
        raise ValueError(f"port {int(port)} is over 65535")
    return host, int(port)


def _host_and_port(address: str) -> str:
    try:
        split_host_port(address)
    except ValueError as problem:
        raise ValueError(
            f"{quote(address)} is not host:port ({problem}): give host:port or [IPv6]:port, "
            "port 0 to 65535, e.g. 127.0.0.1:50051"
        ) from None
    return address


HostPort = Annotated[str, AfterValidator(_host_and_port)]
"""A listening address: ``host:port`` or ``[IPv6]:port``, the port 0 to 65535."""


def store_scheme(url: str) -> str:
    """The scheme of a valid store URL: ``memory``, ``redis``, ``redis+cluster``, ..."""
    return url.partition(":")[0].lower()


def check_store_url(url: str) -> str:
    """``url`` if it names a store the server can open; else ``ValueError`` saying what is
    wrong. Credentials in the URL are never quoted: errors are printed."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator:
        named = url.partition(":")[0].lower()
        if named in STORE_SCHEMES:
            raise ValueError(f"write {named}:// with two slashes, as in {named}://host:port/db")
        scheme = ""
    if scheme not in STORE_SCHEMES:
        shown = f"scheme {quote(scheme)} is" if scheme else "no scheme is given, which is"
        raise ValueError(
            f"unsupported store: {shown} not one of memory://, redis://host:port/db, "
            "rediss://…, redis+cluster://host:port[,host:port...], rediss+cluster://…, "
            "redis+sentinel://host:port[,host:port...]/primary-name[/db] or rediss+sentinel://…"
        )
    if scheme == "memory":
        if rest:
            raise ValueError("memory:// takes nothing after it")
        return url
    # A / ? # or @ in the credentials must be percent-encoded; unencoded, they would split
    # the URL elsewhere and errors below would quote a piece of the password.
    if any(mark in rest.rpartition("@")[0] for mark in "/?#"):
        raise ValueError(
            "the store URL's user or password holds / ? # or @: percent-encode them "
            "(%2F %3F %23 %40)"
        )
    rest, hash_sign, _ = rest.partition("#")
    if hash_sign:
        raise ValueError("a store URL has no #fragment (a # in a password is written %23)")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2]
    cluster = scheme.endswith("+cluster")
    sentinel = scheme.endswith("+sentinel")
    if cluster:
        nodes = [node.strip() for node in hosts.split(",")]
        if not all(nodes):
            raise ValueError(
                "the cluster store URL names no node: use redis+cluster://host:port[,host:port...]"
            )
    elif sentinel:
        nodes = [node.strip() for node in hosts.split(",")]
        if not all(nodes):
            raise ValueError(
                "the sentinel store URL names no sentinel: use "
                "redis+sentinel://host:port[,host:port...]/primary-name[/db]"
            )
        path, _, db = path.partition("/")
        if not path:
            raise ValueError(
                "the sentinel store URL names no primary: use "
                "redis+sentinel://host:port[,host:port...]/primary-name[/db]"
            )
        path = db
    else:
        if not hosts:
            raise ValueError(f"the store URL names no host: use {scheme}://host:port/db")
        if "," in hosts:
            raise ValueError(
                f"{scheme}:// names one server; for a Redis Cluster use {scheme}+cluster://"
            )
        nodes = [hosts]
    for node in nodes:
        try:
            _, port = split_host_port(node, default_port=SENTINEL_PORT if sentinel else REDIS_PORT)
        except ValueError as problem:
            raise ValueError(f"store host {quote(node)}: {problem}") from None
        if port == 0:
            raise ValueError(f"store host {quote(node)}: port 0 is not a Redis port")

    _check_db(path, cluster)
    _check_query(query, scheme)
    return url


def _check_db(path: str, cluster: bool) -> None:
    if path == "":
        return
    if not (path.isascii() and path.isdigit()):
        raise ValueError(
            f"db {quote(path)} after the host is not a number: use /0 to /{MAX_REDIS_DB}"
        )
    if cluster and int(path) != 0:
        raise ValueError(f"db {int(path)}: a Redis Cluster has only db 0")
    if int(path) > MAX_REDIS_DB:
        raise ValueError(f"db {int(path)} is out of range: Redis has databases 0 to {MAX_REDIS_DB}")


def _check_query(query: str, scheme: str) -> None:
    if not query:
        return
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("the query after ? is not name=value pairs joined by &") from None
    names = [name for name, _ in pairs]
    known = _QUERY_PARAMETERS + (_TLS_QUERY_PARAMETERS if scheme in _TLS_SCHEMES else ())
    if scheme.endswith("+sentinel"):
        known += _SENTINEL_QUERY_PARAMETERS
    for name, value in pairs:
        if names.count(name) > 1:
            raise ValueError(f"query parameter {quote(name)} is given twice")
        if name in _SET_ELSEWHERE:
            raise ValueError(
                f"query parameter {name} is set by {_SET_ELSEWHERE[name]}, not the query"
            )
        if name in _TLS_QUERY_PARAMETERS and name not in known:
            raise ValueError(
                f"query parameter {name} needs TLS: use rediss:// or rediss+cluster://"
            )
        if name not in known:
            raise ValueError(f"unknown query parameter {quote(name)} (known: {', '.join(known)})")
        if name == "ssl_cert_reqs" and value not in ("none", "optional", "required"):
            raise ValueError("ssl_cert_reqs is none, optional or required")
        if name == "ssl_check_hostname" and value.lower() not in _YES_NO:
            raise ValueError("ssl_check_hostname is true or false")


class Settings(BaseSettings):
    """Serve agentsessions.sessions.v1.SessionService over gRPC.

    Every flag can also be set as an environment variable SESSIONS_<FLAG>, e.g.
    SESSIONS_STORE_URL. A DURATION is seconds (90), a number with a unit (500ms, 30s,
    5m, 48h, 2d, 30 minutes) or ISO 8601 (PT30M). A yes/no flag alone means yes
    (--log-calls); give it no to turn it off (--auth-open-health-and-reflection no).
    """

    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_",
        cli_kebab_case=True,
        cli_prog_name="session-server",
        # --store; only SESSIONS_STORE_URL in the environment (a validation alias would
        # also read a variable named STORE).
        cli_shortcuts={"store-url": "store"},
        extra="forbid",
        # Validation errors must not echo what was given: it may be a bearer token.
        hide_input_in_errors=True,
    )
    # The agents file's table and the agents setting's, merged once validated.
    _agent_table: dict[str, AgentSpec] = PrivateAttr(default_factory=dict)

    address: HostPort = Field(
        "127.0.0.1:50051",
        description="host:port or [IPv6]:port to listen on; port 0 picks a free port",
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
        description="where sessions live: memory:// (embedded, lost on exit), "
        "redis://[[user]:password@]host[:port][/db] (db 0 to 15; port 6379 if left out) "
        "or rediss:// for TLS, or a Redis Cluster: "
        "redis+cluster://[[user]:password@]host:port[,host:port...] (any of its nodes; "
        "rediss+cluster:// for TLS), or a primary found by Redis Sentinel: "
        "redis+sentinel://[[user]:password@]host:port[,host:port...]/primary-name[/db] "
        "(the sentinels; port 26379 if left out; rediss+sentinel:// for TLS to both); "
        "query parameters: client_name, with Sentinel sentinel_username and "
        "sentinel_password (the sentinels' own credentials; the URL's are the data "
        "nodes'), and with TLS ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, "
        "ssl_check_hostname",
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
        None,
        description="a TOML file of [agents.<agent_id>] tables, read at startup (the agents "
        "setting wins)",
    )
    key_prefix: str = Field("sessions:", min_length=1, description="prefix of every Redis key")
    default_ttl: PositiveDuration = Field(
        timedelta(hours=24),
        description="session lifetime when none is asked for; at most --max-ttl",
    )
    default_idle_timeout: PositiveDuration = Field(
        timedelta(minutes=30),
        description="idle timeout when none is asked for; at most --max-ttl",
    )
    default_max_turns: int = Field(0, ge=0, description="max completed turns; 0 is unlimited")
    max_ttl: PositiveDuration = Field(
        timedelta(days=30),
        description="the longest ttl or idle timeout allowed, up to "
        f"{human_timedelta(LONGEST_DURATION)}",
    )
    max_input_bytes: Annotated[int, _byte_size(1)] = Field(
        32 * 1024, description="the largest Run input, in UTF-8 bytes"
    )
    max_state_bytes: Annotated[int, _byte_size(1)] = Field(
        64 * 1024, description="the largest session state, as JSON bytes"
    )
    max_item_bytes: Annotated[int, _byte_size(1)] = Field(
        256 * 1024, description="the largest item payload (AppendItems), in UTF-8 bytes of JSON"
    )
    max_items_per_append: int = Field(
        100, ge=1, le=10_000, description="the most items one AppendItems or ReplaceItems writes"
    )
    max_message_bytes: Annotated[int, _byte_size(4 << 20, MAX_GRPC_MESSAGE_BYTES)] = Field(
        16 * 1024 * 1024,
        description="the largest gRPC message received or sent, in bytes, from 4 MiB to under "
        "2 GiB (ImportSession carries whole histories)",
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
    run_timeout: PositiveDuration = Field(
        timedelta(minutes=5), description="the longest an agent may take a turn"
    )
    turn_lease: PositiveDuration = Field(
        timedelta(seconds=10),
        description="how long a running turn stays its server's without a heartbeat (sent "
        "every third of it): a server that dies mid-turn holds the session this long at most",
    )
    shutdown_grace: Duration = Field(
        timedelta(seconds=10),
        description="how long running calls may finish after SIGTERM/SIGINT",
    )
    health_check_interval: PositiveDuration = Field(
        timedelta(seconds=1), description="how often the store is pinged"
    )
    redis_timeout: PositiveDuration = Field(
        timedelta(seconds=5), description="Redis connect and read timeout"
    )
    redis_max_connections: int = Field(64, gt=0, description="Redis connection pool size")
    redis_min_replicas: int = Field(
        0,
        ge=0,
        description="replicas that must hold every write the service acknowledges (a "
        "turn's commit, appends, updates, create, end, delete, compression) before it "
        "does: Redis WAIT, sent in the same round trip as the write; when fewer confirm "
        "within --redis-replica-timeout the call fails UNAVAILABLE and a retry with the "
        "same request id completes it. 0: acknowledge once the primary has it (a failover "
        "may then lose the last writes)",
    )
    redis_replica_timeout: PositiveDuration = Field(
        timedelta(seconds=1),
        description="how long a write waits for --redis-min-replicas replicas to confirm it; "
        "under --redis-timeout",
    )
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
    metrics_address: HostPort | None = Field(
        None,
        description="host:port or [IPv6]:port to serve Prometheus metrics on, at /metrics "
        "(e.g. 127.0.0.1:9464); unset, no metrics are served",
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
        description="health checks and reflection need no token (no: protect them too)",
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
    max_history_bytes: Annotated[int, _byte_size(0)] = Field(
        2 * 1024 * 1024,
        description="likewise for a history whose inputs and outputs exceed this many bytes "
        "(0: never)",
    )
    max_summary_bytes: Annotated[int, _byte_size(1)] = Field(
        8 * 1024, description="the longest summary a compression writes, in UTF-8 bytes"
    )
    archive_folded_turns: bool = Field(
        False,
        description="keep compressed turns in an archive key (expiring with the session), "
        "readable with ListTurns include_archived, for audit",
    )
    event_window_events: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="the most events a session's event log holds for watchers and resumed "
        "runs (WatchSession, ResumeRun): older ones are trimmed",
    )
    event_window_age: PositiveDuration = Field(
        timedelta(minutes=10),
        description="how long a session's events stay in its log at most: a watcher or a "
        "resumed run that comes back later gets a gap (re-read the history)",
    )
    publish_delay: Duration = Field(
        timedelta(milliseconds=50),
        description="how long a run holds its reply's deltas before publishing them to the "
        "session's event log for watchers (a reply that ends sooner goes in with its commit, "
        "costing no round trip)",
    )
    compress_turns_over_bytes: Annotated[int, _byte_size(0)] = Field(
        512,
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

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        return check_store_url(url)

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> Settings:
        for name in ("default_ttl", "default_idle_timeout"):
            value: timedelta = getattr(self, name)
            if value > self.max_ttl:
                limit = human_timedelta(self.max_ttl)
                raise ValueError(
                    f"{name}: {human_timedelta(value)} is over the limit of {limit} (max_ttl)"
                )
        return self

    @model_validator(mode="after")
    def _replicas_can_confirm(self) -> Settings:
        if not self.redis_min_replicas:
            return self
        if store_scheme(self.store_url) == "memory":
            raise ValueError(
                "redis_min_replicas: memory:// has no replicas; use a Redis store whose "
                "primary has replicas, or --redis-min-replicas 0"
            )
        if self.redis_replica_timeout >= self.redis_timeout:
            raise ValueError(
                f"redis_replica_timeout: {human_timedelta(self.redis_replica_timeout)} must "
                f"be under --redis-timeout ({human_timedelta(self.redis_timeout)}), or the "
                "connection would time out while Redis waits for the replicas"
            )
        return self

    @model_validator(mode="after")
    def _key_prefix_fits_the_store(self) -> Settings:
        if not store_scheme(self.store_url).endswith("+cluster"):
            return self
        from agent_sessions.store.redis.keys import KeySpace

        # A hash tag in the prefix would put every user in one cluster slot.
        if KeySpace(self.key_prefix).prefix_has_hash_tag:
            raise ValueError(
                f"key_prefix: {self.key_prefix!r} holds a hash tag ({{...}}); on a Redis "
                "Cluster the user id is the tag, so leave braces out of the prefix"
            )
        return self

    @model_validator(mode="after")
    def _read_agents_file(self) -> Settings:
        """The agents table, whole: the file is read here, not when the server starts."""
        table: dict[str, AgentSpec] = {}
        if self.agents_file is not None:
            try:
                table = load_agents_file(self.agents_file)
            except ValidationError as error:
                found = "; ".join(problems(error, ("agents",)))
                raise ValueError(f"agents_file: {self.agents_file}: {found}") from None
            except ValueError as error:
                raise ValueError(f"agents_file: {error}") from None
        self._agent_table = table | self.agents
        return self

    @model_validator(mode="after")
    def _workers_can_share(self) -> Settings:
        """What ``--workers`` > 1 cannot work with; all of it is known before any process starts."""
        if self.workers == 1:
            return self
        flag = f"--workers {self.workers}"
        if store_scheme(self.store_url) == "memory":
            raise ValueError(
                f"{flag} needs a shared store: memory:// lives inside one process, so each "
                "worker would hold its own sessions; use --store redis://host:port/db, or "
                "--workers 1"
            )
        if split_host_port(self.address)[1] == 0:
            raise ValueError(
                f"{flag} needs a fixed port: with port 0 each worker would listen on a port "
                "of its own"
            )
        return self

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
        return dict(self._agent_table)

    def policy(self) -> SessionPolicy:
        """The session rules these settings make: the one place a SessionPolicy is built
        from them."""
        return SessionPolicy(
            default_ttl_ms=_ms(self.default_ttl),
            default_idle_timeout_ms=_ms(self.default_idle_timeout),
            default_max_turns=self.default_max_turns,
            max_ttl_ms=_ms(self.max_ttl),
            max_input_bytes=self.max_input_bytes,
            max_state_bytes=self.max_state_bytes,
            max_item_bytes=self.max_item_bytes,
            max_items_per_append=self.max_items_per_append,
            context_turns=self.context_turns,
            run_timeout_ms=_ms(self.run_timeout),
            turn_lease_ms=_ms(self.turn_lease),
            max_sessions_per_user=self.max_sessions_per_user,
            max_concurrent_runs=self.max_concurrent_runs,
            keep_last_turns=self.keep_last_turns,
            max_history_turns=self.max_history_turns,
            max_history_bytes=self.max_history_bytes,
            max_summary_bytes=self.max_summary_bytes,
            archive_folded_turns=self.archive_folded_turns,
            publish_delay_ms=_ms(self.publish_delay),
        )

    def event_window(self) -> EventWindow:
        """How much of each session's event log the store keeps."""
        return EventWindow(
            max_events=self.event_window_events, max_age_ms=_ms(self.event_window_age)
        )


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def problems(error: ValidationError, within: tuple[str, ...] = ()) -> list[str]:
    """Each problem of ``error`` as one line: where (dotted, after ``within``), then what."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in (*within, *problem["loc"]))
        # A validator's own ValueError says what is wrong; pydantic's "Value error, "
        # before it says nothing.
        what = (
            str(problem["ctx"]["error"])
            if problem["type"] == "value_error" and "error" in problem.get("ctx", {})
            else problem["msg"]
        )
        # Checks across settings name their settings themselves.
        lines.append(f"{where}: {what}" if where else what)
    return lines


def from_cli(args: Sequence[str]) -> Settings:
    """The settings from ``args`` (flags), then ``SESSIONS_*`` variables, then defaults;
    ``--help`` prints the help and exits. Raises ``ValidationError`` for a bad value."""
    source: CliSettingsSource[Settings] = CliSettingsSource(
        Settings, add_argument_method=_add_argument
    )
    return CliApp.run(Settings, cli_args=list(args), cli_settings_source=source)


# How --help names each setting's value where its type says too little (str) or too much
# (pydantic's own spelling of the type).
_METAVARS = {
    "address": "HOST:PORT",
    "metrics_address": "HOST:PORT",
    "store_url": "URL",
    "default_agent": "AGENT_ID",
    "agents": "JSON",
    "key_prefix": "PREFIX",
    "auth_tokens": "TOKENS",
    "tenant_tokens": "JSON",
}
_TYPE_METAVARS: dict[object, str] = {
    timedelta: "DURATION",
    int: "N",
    Path: "FILE",
    str: "TEXT",
    bool: "yes|no",
}


def _add_argument(parser: ArgumentParser, *names: str, **options: Any) -> Any:
    """Adds one flag as pydantic-settings asks, with help in plain words: the value named
    (HOST:PORT, DURATION, FILE), defaults with their units, yes/no flags that need no value."""
    field = Settings.model_fields.get(options.get("dest", ""))
    if field is not None:
        name = options["dest"]
        options["metavar"] = _METAVARS.get(name) or _metavar(field)
        options["help"] = _help(name, field).replace("%", "%%")
        if field.annotation is bool:
            # --log-calls alone is yes; --log-calls no (or =false) still works.
            options.update(nargs="?", const="true")
    return parser.add_argument(*names, **options)


def _metavar(field: FieldInfo) -> str:
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):  # X | None
        [annotation] = [kind for kind in get_args(annotation) if kind is not type(None)]
    if get_origin(annotation) is Annotated:  # FilePath
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return "{" + ",".join(str(choice) for choice in get_args(annotation)) + "}"
    if get_origin(annotation) is dict:
        return "JSON"
    return _TYPE_METAVARS.get(annotation, "VALUE")


def _help(name: str, field: FieldInfo) -> str:
    text = field.description or ""
    default = field.get_default(call_default_factory=True)
    if default is None or default == {} or default == []:
        return text  # the description says what unset means
    if isinstance(default, bool):
        shown = "yes" if default else "no"
    elif isinstance(default, timedelta):
        shown = human_timedelta(default)
    elif (
        isinstance(default, int)
        and name.endswith("_bytes")
        and human_bytes(default) != (f"{default} bytes")
    ):
        shown = f"{default} = {human_bytes(default)}"
    else:
        shown = str(default)
    return f"{text} (default: {shown})"
