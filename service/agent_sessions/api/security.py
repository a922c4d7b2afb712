"""Transport security and caller authentication: TLS credentials and a bearer-token check."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from agentsessions.sessions.v1 import sessions_pb2

from agent_sessions.api.handlers import Behaviour, wrapped
from agent_sessions.config import Settings

if TYPE_CHECKING:  # generic in the type stubs only
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor

UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token: send 'authorization: Bearer <token>'"

# Probes and `grpcurl list` reach these without a token unless told otherwise.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
TENANTED = f"/{sessions_pb2.DESCRIPTOR.services_by_name['SessionService'].full_name}/"


class SecurityConfigError(Exception):
    """A certificate or key the settings name cannot be used; the message names the setting."""


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SecurityConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate and key are configured (mutual TLS with a client
    CA), else None: plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    key = _read("tls_key_file", settings.tls_key_file)
    chain = _read("tls_cert_file", settings.tls_cert_file)
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=_read("tls_client_ca_file", client_ca) if client_ca else None,
        require_client_auth=client_ca is not None,
    )


def security_mode(settings: Settings) -> str:
    """How the server is protected, for the log (never the tokens themselves)."""
    transport = "plaintext"
    if settings.tls_cert_file is not None:
        transport = "mTLS" if settings.tls_client_ca_file is not None else "TLS"
    tokens = len(settings.auth_tokens) + len(settings.tenant_tokens)
    auth = f"bearer tokens required ({tokens} configured)" if tokens else "no token auth"
    if settings.tenant_tokens:
        auth += f", {len(settings.tenant_tokens)} tenants"
    return f"{transport}, {auth}"


def _digest(token: str) -> bytes:
    # Digests have one length, so the comparison does not even reveal the token's length.
    return hashlib.sha256(token.encode()).digest()


async def _deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)


def _denial(handler: grpc.RpcMethodHandler[Any, Any] | None) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` that ends the call UNAUTHENTICATED.

    It has no deserializer, so the request is never even parsed.
    """
    if handler is None:
        return grpc.unary_unary_rpc_method_handler(_deny)
    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    return kinds[handler.request_streaming, handler.response_streaming](_deny)


current_tenant: ContextVar[str] = ContextVar("current_tenant", default="")
"""The tenant of the call being served: "" unless its token is a tenant's."""


def _in_tenant(
    handler: grpc.RpcMethodHandler[Any, Any], tenant: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with ``current_tenant`` set while its behaviour runs."""

    def wrap(behaviour: Behaviour) -> Behaviour:
        async def in_tenant(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            current_tenant.set(tenant)  # the call's own task: nothing to reset
            return await behaviour(request, context)

        return in_tenant

    return wrapped(handler, wrap)


class BearerTokenInterceptor(ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>`` naming a known token.

    ``tokens`` pairs each token with its tenant ("" for none); a call with a tenant's
    token runs with ``current_tenant`` set to it. With ``open_health_and_reflection``,
    health checks and reflection need no token.
    """

    def __init__(
        self, tokens: Sequence[tuple[str, str]], *, open_health_and_reflection: bool
    ) -> None:
        if not tokens:
            raise ValueError("BearerTokenInterceptor needs at least one token")
        self._digests = [(_digest(token), tenant) for token, tenant in tokens]
        self._open_prefixes = OPEN_PREFIXES if open_health_and_reflection else ()

    def tenant_of(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
        """The tenant ("" for none) of the configured token the metadata carries, compared
        in constant time; None when it carries none."""
        header = next((value for key, value in metadata or () if key == "authorization"), "")
        scheme, _, token = header.partition(" ") if isinstance(header, str) else ("", "", "")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        digest = _digest(token)
        # Every configured token is compared, with no early exit at a match.
        found = None
        for known, tenant in self._digests:
            if hmac.compare_digest(digest, known):
                found = tenant
        return found

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler_call_details.method.startswith(self._open_prefixes):
            return handler
        tenant = self.tenant_of(handler_call_details.invocation_metadata)
        if tenant is None:
            return _denial(handler)
        # Only the session service has tenants (its handlers are all coroutines).
        if tenant and handler is not None and handler_call_details.method.startswith(TENANTED):
            return _in_tenant(handler, tenant)
        return handler


def interceptors(settings: Settings) -> list[ServerInterceptor]:
    """The server's interceptors: the token check when tokens are configured."""
    tokens = [(token.get_secret_value(), "") for token in settings.auth_tokens]
    tokens += [(token.get_secret_value(), name) for name, token in settings.tenant_tokens.items()]
    if not tokens:
        return []
    return [
        BearerTokenInterceptor(
            tokens, open_health_and_reflection=settings.auth_open_health_and_reflection
        )
    ]
