"""Agents: what answers a session's turns."""

from agent_sessions.agents.protocol import Agent, AgentContext
from agent_sessions.agents.registry import AgentRegistry

__all__ = ["Agent", "AgentContext", "AgentRegistry"]
