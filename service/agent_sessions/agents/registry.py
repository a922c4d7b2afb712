"""Which agent answers which agent id, with what limits."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass

from agent_sessions.agents.echo import EchoAgent
from agent_sessions.agents.protocol import Agent
from agent_sessions.agents.specs import (
    DEFAULT_MAX_REPLY_BYTES,
    AgentSpec,
    EchoSpec,
    GrpcSpec,
    OpenAISpec,
    PluginSpec,
    WeatherSpec,
)
from agent_sessions.agents.weather import WeatherAgent


@dataclass(frozen=True, slots=True)
class ConfiguredAgent:
    """An agent with its limits; ``timeout_ms`` None means the server's run timeout."""

    agent: Agent
    timeout_ms: int | None = None
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES


def builtin_agents() -> dict[str, ConfiguredAgent]:
    """The agents every server has, unless the agents table names others so."""
    return {"echo": ConfiguredAgent(EchoAgent()), "weather": ConfiguredAgent(WeatherAgent())}


class AgentRegistry:
    """Agents by agent id. With a ``default`` agent id, unknown ids are answered by it;
    without one they are refused."""

    def __init__(
        self,
        agents: Mapping[str, Agent | ConfiguredAgent] | None = None,
        *,
        default: str | None = None,
    ) -> None:
        self._agents = builtin_agents()
        for agent_id, agent in (agents or {}).items():
            self._agents[agent_id] = (
                agent if isinstance(agent, ConfiguredAgent) else ConfiguredAgent(agent)
            )
        if default is not None and default not in self._agents:
            raise ValueError(
                f"default agent {default!r} is not configured; known: {sorted(self._agents)}"
            )
        self._default = default
        self.reads_items = any(
            getattr(configured.agent, "reads_items", True) for configured in self._agents.values()
        )
        """Whether some agent reads its history's items (see the Agent protocol)."""

    @classmethod
    def from_specs(
        cls, specs: Mapping[str, AgentSpec], *, default: str | None = None
    ) -> AgentRegistry:
        return cls({agent_id: build(spec) for agent_id, spec in specs.items()}, default=default)

    @property
    def agent_ids(self) -> list[str]:
        return sorted(self._agents)

    def knows(self, agent_id: str) -> bool:
        return self._default is not None or agent_id in self._agents

    def answering_id(self, agent_id: str) -> str:
        """The id of the configured agent that answers ``agent_id``: itself, or the
        default agent's (ids that clients choose freely never name a metric or a span)."""
        if agent_id in self._agents:
            return agent_id
        return self._default or "other"

    def resolve(self, agent_id: str) -> ConfiguredAgent | None:
        found = self._agents.get(agent_id)
        if found is None and self._default is not None:
            return self._agents[self._default]
        return found

    async def aclose(self) -> None:
        """Closes the agents that hold connections (those with an ``aclose`` method)."""
        for configured in self._agents.values():
            close = getattr(configured.agent, "aclose", None)
            if close is not None:
                await close()

    def longest_timeout_ms(self, run_timeout_ms: int) -> int:
        return max([run_timeout_ms, *(a.timeout_ms for a in self._agents.values() if a.timeout_ms)])


def build(spec: AgentSpec) -> ConfiguredAgent:
    """The agent a spec describes, with its limits."""
    agent: Agent
    if isinstance(spec, EchoSpec):
        agent = EchoAgent()
    elif isinstance(spec, WeatherSpec):
        agent = WeatherAgent()
    elif isinstance(spec, OpenAISpec):
        from agent_sessions.agents.openai_chat import OpenAIChatAgent

        agent = OpenAIChatAgent.from_spec(spec)
    elif isinstance(spec, GrpcSpec):
        from agent_sessions.agents.remote import RemoteAgent

        agent = RemoteAgent.from_spec(spec)
    else:
        agent = _plugin(spec)
    timeout_ms = round(spec.timeout.total_seconds() * 1000) if spec.timeout else None
    return ConfiguredAgent(agent, timeout_ms, spec.max_reply_bytes)


def _plugin(spec: PluginSpec) -> Agent:
    module_name, _, attribute = spec.object.partition(":")
    target: object = importlib.import_module(module_name)
    for name in attribute.split("."):
        target = getattr(target, name)
    # A class passes the protocol check through its stream function: instantiate it.
    if inspect.isclass(target) or not isinstance(target, Agent):
        if not callable(target):
            raise TypeError(f"{spec.object} is neither an agent nor a factory of one")
        target = target(**spec.options)
    if not isinstance(target, Agent):
        raise TypeError(f"{spec.object} did not give an agent (an object with stream())")
    return target
