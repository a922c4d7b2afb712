"""Agents: what answers a session's turns."""

from agent_sessions.agents.errors import AgentError, AgentTimeout, AgentUnavailable
from agent_sessions.agents.protocol import Agent, AgentContext, AgentEvent
from agent_sessions.agents.registry import AgentRegistry

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentEvent",
    "AgentRegistry",
    "AgentTimeout",
    "AgentUnavailable",
]
