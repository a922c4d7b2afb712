"""Builds and runs the gRPC server: sessions, health checking and reflection."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Mapping

import grpc
from agentsessions.sessions.v1 import sessions_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agent_sessions.agents import Agent, AgentRegistry
from agent_sessions.agents.registry import ConfiguredAgent
from agent_sessions.agents.registry import build as build_agent
from agent_sessions.agents.specs import AgentSpec
from agent_sessions.api.calllog import CallLogInterceptor
from agent_sessions.api.metrics import MetricsInterceptor
from agent_sessions.api.registration import add_session_service
from agent_sessions.api.security import interceptors, security_mode, server_credentials
from agent_sessions.api.servicer import SessionServicer
from agent_sessions.api.tracing import TracingInterceptor
from agent_sessions.config import Settings, human_timedelta, split_host_port, store_scheme
from agent_sessions.errors import StoreMisconfigured
from agent_sessions.health import StoreHealth
from agent_sessions.observe.metrics import MetricsEndpoint, SessionMetrics, in_worker
from agent_sessions.observe.tracing import Tracing, TracingObserver
from agent_sessions.sessions import SessionManager, wall_clock_ms
from agent_sessions.sessions.observers import Observers, SessionObserver
from agent_sessions.store import SessionStore
from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.metered import MeteredSessionStore

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The server cannot start, for a reason its message says whole (a busy port): an
    operator's problem, reported in one line without a traceback."""


def _built(agent_id: str, spec: AgentSpec) -> ConfiguredAgent:
    try:
        return build_agent(spec)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        # A plugin that does not import, or does not make an agent: the operator's to fix.
        raise StartupError(f"agent {agent_id!r} cannot be built: {error}") from None


def open_store(settings: Settings) -> SessionStore:
    if store_scheme(settings.store_url) == "memory":
        return MemorySessionStore(event_window=settings.event_window())
    from agent_sessions.store.redis import RedisSessionStore

    return RedisSessionStore.from_url(
        settings.store_url,
        prefix=settings.key_prefix,
        socket_timeout=settings.redis_timeout.total_seconds(),
        max_connections=settings.redis_max_connections,
        compress_over_bytes=settings.compress_turns_over_bytes,
        event_window=settings.event_window(),
        min_replicas=settings.redis_min_replicas,
        replica_timeout_ms=int(settings.redis_replica_timeout.total_seconds() * 1000),
    )


class SessionServer:
    """One listening server over one store; ``start``, then ``stop`` with a grace period."""

    def __init__(
        self,
        settings: Settings,
        *,
        agents: Mapping[str, Agent] | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.settings = settings
        configured: dict[str, Agent | ConfiguredAgent] = {
            agent_id: _built(agent_id, spec) for agent_id, spec in settings.agent_specs().items()
        }
        configured.update(agents or {})
        try:
            self.agents = AgentRegistry(configured, default=settings.default_agent)
        except ValueError as error:  # a default agent that the table does not name
            raise StartupError(f"--default-agent: {error}") from None
        self.store = store if store is not None else open_store(settings)
        # Metrics and tracing observe the session logic; they never reach into it.
        observers: list[SessionObserver] = []
        self.metrics: SessionMetrics | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        if settings.metrics_address is not None:
            self.metrics = SessionMetrics()
            if not in_worker():  # else the supervisor serves the workers' sum
                self._metrics_endpoint = MetricsEndpoint(self.metrics, settings.metrics_address)
            observers.append(self.metrics)
            # Every store call timed: the tenants' namespaces and the health pings too.
            self.store = MeteredSessionStore(self.store, self.metrics)
        self._tracing = None if settings.otel_traces == "off" else Tracing(settings.otel_traces)
        if self._tracing is not None:
            observers.append(TracingObserver())
        policy = settings.policy()
        observer = Observers(observers)

        def manager(store: SessionStore) -> SessionManager:
            return SessionManager(store, self.agents, policy, clock=clock, observer=observer)

        # Each tenant's sessions live apart, in a namespace of the same store.
        self.managers = {"": manager(self.store)} | {
            tenant: manager(self.store.namespace(tenant)) for tenant in settings.tenant_tokens
        }
        self.health = StoreHealth(
            self.store,
            interval_s=settings.health_check_interval.total_seconds(),
            timeout_s=settings.redis_timeout.total_seconds(),
        )
        self.port = 0
        self._stopped = False
        self._credentials = server_credentials(settings)
        # The metrics interceptor first: it counts calls the token check refuses too;
        # the tracing one before it, so that a call's span covers everything.
        chain = interceptors(settings)
        if settings.log_calls:
            chain.insert(0, CallLogInterceptor(with_text=settings.log_conversation_text))
        if self.metrics is not None:
            chain.insert(0, MetricsInterceptor(self.metrics))
        if self._tracing is not None:
            chain.insert(0, TracingInterceptor(self._tracing.tracer))
        options: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # The workers (agent_sessions.workers) each bind the same address, and the
            # kernel spreads new connections among them. A lone server must not: gRPC
            # turns SO_REUSEPORT on by default, and a second server on a busy port would
            # then share it silently instead of failing.
            ("grpc.so_reuseport", 1 if self._shares_port else 0),
        ]
        self._server = grpc.aio.server(interceptors=chain, options=options)
        add_session_service(SessionServicer(self.managers), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._server)
        reflection.enable_server_reflection(
            (
                sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )

    @property
    def address(self) -> str:
        host = self.settings.address.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on once started; None without metrics."""
        return None if self._metrics_endpoint is None else self._metrics_endpoint.port

    @property
    def _shares_port(self) -> bool:
        return self.settings.workers > 1

    async def start(self) -> None:
        """Listens and serves; raises ``StartupError`` when the address (or the metrics
        address) cannot be listened on. ``stop`` releases what was made either way."""
        address = self.settings.address
        try:
            if self._credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, self._credentials)
        except RuntimeError:  # gRPC says only "Failed to bind"
            self.port = 0
        if self.port == 0:
            why = await asyncio.to_thread(_why_not_bound, address, self._shares_port)
            raise StartupError(f"cannot listen on {address}: {why}")
        if self._metrics_endpoint is not None:
            try:
                self._metrics_endpoint.start()
            except OSError as error:
                raise StartupError(
                    f"cannot serve metrics on {self.settings.metrics_address}: {_reason(error)}"
                ) from None
        try:
            await self.store.check()
        except StoreMisconfigured as error:
            raise StartupError(f"cannot use the store: {error}") from None
        await self.health.start()
        await self._server.start()
        log.info(
            "serving agentsessions.sessions.v1.SessionService on %s (store %s; %s)",
            self.address,
            self.settings.store_url.split("@")[-1],
            security_mode(self.settings),
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuses new calls, lets running ones finish within the grace period, then closes."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace.total_seconds() if grace_s is None else grace_s
        await self.health.shutdown()
        await self._server.stop(grace)
        # The server cancels the runs still going when the grace period ends but does
        # not wait for them to record their turns CANCELLED: that happens here.
        for manager in self.managers.values():
            # Detached runs are no call's: they get a grace period of their own.
            await manager.settle_detached(timeout_s=grace)
            await manager.settle(timeout_s=self.settings.redis_timeout.total_seconds())
        await self.agents.aclose()
        await self.store.close()
        if self._metrics_endpoint is not None:
            await self._metrics_endpoint.stop()
        if self._tracing is not None:
            self._tracing.shutdown()


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _why_not_bound(address: str, reuse_port: bool) -> str:
    """Why gRPC could not bind ``address``, which it does not say: found by binding it here
    as gRPC would (address already in use, permission denied, cannot assign...)."""
    host, port = split_host_port(address)
    try:
        candidates = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        return f"{host} does not resolve ({_reason(error)})"
    for family, kind, protocol, _, where in candidates:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(where)
            except OSError as error:
                return _reason(error)
    return "gRPC could not bind it (GRPC_VERBOSITY=debug logs why)"


def run(settings: Settings) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit status: 0 once stopped, 1 when
    the server cannot start (logged in one line)."""
    try:
        asyncio.run(serve(settings))
    except StartupError as error:
        log.error("%s", error)
        return 1
    return 0


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    server = SessionServer(settings)
    try:
        await server.start()
    except BaseException:
        await server.stop(0)
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info(
        "shutting down: running calls have %s to finish", human_timedelta(settings.shutdown_grace)
    )
    await server.stop()
