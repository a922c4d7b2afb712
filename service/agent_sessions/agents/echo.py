"""The built-in agent: repeats the input, showing which context it was given."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from agent_sessions.agents.protocol import AgentContext, AgentEvent

_WORD = re.compile(r"\S+\s*|\s+")


class EchoAgent:
    """Deterministic: the same context and input always give the same reply.

    The reply names the turn number and quotes the previous input, so a caller can
    see that the session's context reached the agent; it streams one word a chunk.
    """

    reads_items = False

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        reply = f"Echo (turn {context.turn_index}): {text}"
        if context.history:
            reply += f' (previous: "{context.history[-1].input}")'
        for chunk in _WORD.findall(reply):
            yield chunk
