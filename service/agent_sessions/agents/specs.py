"""The agents table: which backend answers which ``agent_id``, and its limits.

Read from the agents file (TOML, ``[agents.<agent_id>]`` tables) and from the
``agents`` setting (JSON in ``SESSIONS_AGENTS``); each entry names its ``kind``.
"""

from __future__ import annotations

import importlib.util
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator

DEFAULT_MAX_REPLY_BYTES = 256 * 1024


class _AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: timedelta | None = Field(
        None, gt=timedelta(0), description="the longest a turn may take; the run timeout if unset"
    )
    max_reply_bytes: int = Field(
        DEFAULT_MAX_REPLY_BYTES, gt=0, description="the largest reply, in UTF-8 bytes"
    )


class EchoSpec(_AgentSpec):
    """The built-in echo agent."""

    kind: Literal["echo"]


class WeatherSpec(_AgentSpec):
    """The seed's weather agent: deterministic and offline."""

    kind: Literal["weather"]


class OpenAISpec(_AgentSpec):
    """A model behind an OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, ...)."""

    kind: Literal["openai"]
    base_url: str = Field(description="the API root, e.g. http://localhost:11434/v1")
    model: str = Field(min_length=1)
    api_key: SecretStr | None = Field(None, description="the key itself (prefer api_key_env)")
    api_key_env: str | None = Field(None, description="the environment variable holding the key")
    system_prompt: str = "You are a helpful assistant."
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _openai_is_installed(self) -> OpenAISpec:
        # The openai package is an extra: a server without such an agent does not need it.
        if importlib.util.find_spec("openai") is None:
            raise ValueError(
                "the openai agent kind needs the openai package: "
                "pip install 'agent-sessions[openai]'"
            )
        return self


class GrpcSpec(_AgentSpec):
    """An agent service speaking agentsessions.agents.v1.AgentService."""

    kind: Literal["grpc"]
    target: str = Field(description="host:port of the agent service")
    tls: bool = False


class PluginSpec(_AgentSpec):
    """An object in this process that implements the agent protocol."""

    kind: Literal["plugin"]
    object: str = Field(
        pattern=r"^[\w.]+:[\w.]+$",
        description="module:attribute naming an agent, or a class/factory called with options",
    )
    options: dict[str, Any] = Field(default_factory=dict)


AgentSpec = Annotated[
    EchoSpec | WeatherSpec | OpenAISpec | GrpcSpec | PluginSpec, Field(discriminator="kind")
]

_TABLE: TypeAdapter[dict[str, AgentSpec]] = TypeAdapter(dict[str, AgentSpec])


def load_agents_file(path: Path) -> dict[str, AgentSpec]:
    """The ``[agents.<agent_id>]`` tables of a TOML file, validated.

    Raises ``ValueError`` when the file cannot be read, is not TOML or holds anything but
    ``[agents.<agent_id>]`` tables, and pydantic's ``ValidationError`` (its locations
    starting at the agent id) when an agent's entry is wrong.
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    # Anything else is refused rather than ignored: a misspelt [agent.x] would
    # otherwise leave the server without the agent and without a word about it.
    unexpected = sorted(key for key in document if key != "agents")
    if unexpected:
        raise ValueError(
            f"{path}: unknown top-level key {unexpected[0]!r}: the file holds only "
            "[agents.<agent_id>] tables"
        )
    return _TABLE.validate_python(document.get("agents", {}))
