"""How the clients reach the server: address, credentials, retries and call metadata."""

from __future__ import annotations

import json
import os

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
SERVICE = "agentsessions.sessions.v1.SessionService"

# Calls that may be sent twice without harm. Run, AppendItems and ReplaceItems are
# among them because the client gives every one a request id (a repeat replays the
# turn, or returns the items written); Create, Update and Delete are not, since a
# repeat of one that went through reports a conflict. CompressSession is not either:
# it may call a model to summarize, and a repeat of one that went through folds more
# turns; the caller decides whether to try again. Nor are PopItem and ClearItems: a
# repeat would remove what was written since, or pop a second item. WatchSession and
# ResumeRun only read; like every stream, they are retried until their first answer.
RETRIED_METHODS = (
    "GetSession",
    "ListSessions",
    "ListTurns",
    "ListItems",
    "EndSession",
    "Run",
    "AppendItems",
    "ReplaceItems",
    "WatchSession",
    "ResumeRun",
)

SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": method} for method in RETRIED_METHODS],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def address(explicit: str | None) -> str:
    """The address given, else ``SESSIONS_ADDRESS``, else ``127.0.0.1:50051``."""
    return explicit or os.environ.get("SESSIONS_ADDRESS") or DEFAULT_ADDRESS


# Whole histories travel in one message (export pages, ImportSession); the server
# sets its own limit (--max-message-bytes).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def options(retries: bool) -> list[tuple[str, object]]:
    sizes: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if not retries:
        return [*sizes, ("grpc.enable_retries", 0)]
    return [*sizes, ("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG)]


def credentials(
    *,
    tls: bool,
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials when asked for (or when any certificate is given), else None."""
    if not (tls or root_certificates or certificate_chain):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
