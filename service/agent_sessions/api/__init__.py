"""The gRPC layer: translates sessions.v1 messages to and from the session logic."""
