"""One log record per SessionService call (``--log-calls``): who, which session, the status.

Each record carries ``method``, ``code``, ``duration_ms``, ``user_id``, ``session_id`` and
``request_id`` as fields, which ``--log-format json`` writes as keys of the line. What
users said stays out of the logs unless ``--log-conversation-text`` (for debugging)
adds a Run's ``input``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc

from agent_sessions.api.handlers import Behaviour, ServiceInterceptor
from agent_sessions.api.status import aborted_code

log = logging.getLogger(__name__)

_IDS = ("user_id", "session_id", "request_id")


def ids_of(request: Any) -> dict[str, str]:
    """The ids a request names, at its top level or in its ``session`` (Update, Import)."""
    found = {}
    session = getattr(request, "session", None)
    for name in _IDS:
        value = getattr(request, name, "") or getattr(session, name, "")
        if isinstance(value, str) and value:
            found[name] = value
    return found


class CallLogInterceptor(ServiceInterceptor):
    """Logs every SessionService call once it ends (calls the token check refuses too,
    when it runs first); health checks and reflection are not logged."""

    def __init__(self, *, with_text: bool = False) -> None:
        super().__init__()
        self._with_text = with_text

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        with_text = self._with_text and method == "Run"

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behaviour(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = aborted_code(context)
                raise
            finally:
                milliseconds = (time.perf_counter() - started) * 1000
                fields: dict[str, object] = {
                    "method": method,
                    "code": code.name,
                    "duration_ms": round(milliseconds, 3),
                    **ids_of(request),
                }
                if with_text:
                    fields["input"] = getattr(request, "input", "")
                log.info("%s %s in %.1f ms", method, code.name, milliseconds, extra=fields)

        return call
