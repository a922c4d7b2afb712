"""Which agent answers which agent id."""

from __future__ import annotations

from collections.abc import Mapping

from agent_sessions.agents.echo import EchoAgent
from agent_sessions.agents.protocol import Agent


class AgentRegistry:
    """Agents by agent id, with a default for any id not configured."""

    def __init__(self, agents: Mapping[str, Agent] | None = None, *, default: Agent | None = None):
        self._agents = dict(agents or {})
        self._default: Agent = default if default is not None else EchoAgent()

    def resolve(self, agent_id: str) -> Agent:
        return self._agents.get(agent_id, self._default)
