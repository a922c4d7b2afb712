"""The gRPC layer: translates agentsessions.sessions.v1 messages to and from the session logic."""
