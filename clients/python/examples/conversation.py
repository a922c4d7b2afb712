"""The seed's conversation: one session, turns that share context, then the end.

Run a server (`make run`), then: python clients/python/examples/conversation.py
(SESSIONS_ADDRESS picks another server).
"""

from __future__ import annotations

from datetime import timedelta

from agent_sessions_client import SessionClient


def main() -> None:
    with SessionClient() as client:
        session = client.create_session(
            user_id="user-123",
            agent_id="weather",  # the seed's agent: it answers from the session's context
            ttl=timedelta(hours=48),
            max_turns=100,
        )
        print(f"session {session.session_id}")
        for text in ("Hello", "How's the weather in Shanghai?"):
            print(f"User: {text}")
            print(f"Agent: {session.run(text)}")

        print("User: What about Beijing?")
        print("Agent: ", end="")
        for chunk in session.stream("What about Beijing?"):  # the reply as it arrives
            print(chunk, end="", flush=True)
        print()

        info = session.end()
        print(f"ended after {info.turn_count} turns")


if __name__ == "__main__":
    main()
