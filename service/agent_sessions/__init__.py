"""A gRPC session backend for AI agents: sessions, streamed turns and their history."""
