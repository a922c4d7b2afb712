"""Agents: what answers a session's turns."""

from agent_sessions.agents.protocol import Agent, AgentContext, AgentEvent
from agent_sessions.agents.registry import AgentRegistry
from agent_sessions.errors import AgentError, AgentTimeout, AgentUnavailable

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentEvent",
    "AgentRegistry",
    "AgentTimeout",
    "AgentUnavailable",
]
