"""How an agent backend says why it could not reply.

Backends raise these with the upstream reason in the message; the session logic
records the turn FAILED with that message and answers the caller with the status
the error calls for. Any other exception from an agent counts as :class:`AgentError`.
"""

from __future__ import annotations


class AgentError(Exception):
    """The agent failed (a rejected request, a malformed stream): INTERNAL."""


class AgentUnavailable(AgentError):
    """The agent cannot be reached or is overloaded (refused, HTTP 5xx or 429): UNAVAILABLE."""


class AgentTimeout(AgentError):
    """The agent did not answer in time: DEADLINE_EXCEEDED."""
