"""One client per event loop, for the framework adapters.

A grpc.aio channel belongs to the event loop it was made on. The frameworks call one
session store from several loops: the OpenAI Agents SDK's ``Runner.run_sync`` drives the
thread's default loop while ``Runner.run`` runs on the caller's, and ADK's ``Runner.run``
runs each call in a thread with a loop of its own. An adapter made with a target address
therefore keeps a client per loop, made on first use there and dropped with the loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

from agent_sessions_client._async import AsyncSessionClient


class LoopClients:
    """The adapter's client on the running loop: ``client`` if one was given (the caller
    keeps it on its loop), else one per loop for ``target``, made with ``options`` (the
    keyword arguments of ``AsyncSessionClient``: ``tls``, ``token``...)."""

    def __init__(
        self,
        target: str | None,
        client: AsyncSessionClient | None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if client is not None and (target is not None or options):
            raise ValueError("give a target address (and client options) or a client, not both")
        self._given = client
        self._target = target
        self._options = dict(options or {})
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSessionClient]
        self._by_loop = weakref.WeakKeyDictionary()

    def current(self) -> AsyncSessionClient:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        client = self._by_loop.get(loop)
        if client is None:
            client = AsyncSessionClient(self._target, **self._options)
            self._by_loop[loop] = client
        return client

    async def close(self) -> None:
        """Closes the client of the running loop if this made it (others close with
        their loops); a given client stays open, its owner's to close."""
        if self._given is not None:
            return
        client = self._by_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
