"""Session stores: one protocol, an in-memory and a Redis implementation."""

from agent_sessions.store.protocol import SessionStore

__all__ = ["SessionStore"]
