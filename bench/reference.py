"""The reference `make bench` holds the project's Run to: a minimal grpc.aio servicer.

It serves ``agentsessions.sessions.v1.SessionService``'s Run (and nothing else) as a bare service
would: one EVALSHA records the turn's input and returns its index and the previous
input, the echo reply streams back one word a message (as the echo agent produces
it: about 20 messages for the bench's input), and a second EVALSHA stores the reply.
No validation, no domain layer, no coalescing: just grpc.aio, redis.asyncio and
hiredis. `make bench` runs it as a process of its own on the bench's Redis::

    python -m bench.reference --address 127.0.0.1:PORT --redis-url redis://127.0.0.1:PORT/0

With ``--join`` the reply goes out as one delta instead (three messages a Run): what
the project's coalescing makes of the echo agent's reply, whose words all arrive
before the first is sent. That variant compares like with like on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from collections.abc import AsyncIterator

import grpc
import redis.asyncio
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc

# KEYS[1] the session's list of inputs; ARGV[1] the new input.
# -> {the new turn's index (1-based), the previous input or ""}
BEGIN = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local previous = ''
if n > 1 then
  previous = redis.call('LINDEX', KEYS[1], -2)
end
return {n, previous}
"""

# KEYS[1] the session's hash of replies; ARGV[1] the turn's index, ARGV[2] its reply.
FINISH = """
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""

_WORD = re.compile(r"\S+\s*|\s+")


class ReferenceServicer(sessions_pb2_grpc.SessionServiceServicer):
    """Run with two Redis round trips and one message per reply word; nothing else."""

    def __init__(
        self, client: redis.asyncio.Redis, begin_sha: str, finish_sha: str, *, join: bool = False
    ) -> None:
        self._client = client
        self._begin = begin_sha
        self._finish = finish_sha
        self._join = join

    async def Run(
        self, request: pb.RunRequest, context: grpc.aio.ServicerContext[pb.RunRequest, pb.RunEvent]
    ) -> AsyncIterator[pb.RunEvent]:
        key = f"ref:{{{request.user_id}}}:{request.session_id}"
        text = request.input
        index, previous = await self._client.evalsha(self._begin, 1, key + ":in", text)
        yield pb.RunEvent(started=pb.RunStarted(turn_index=index))
        reply = f"Echo (turn {index}): {text}"
        if previous:
            reply += f' (previous: "{previous}")'
        if self._join:
            yield pb.RunEvent(delta=pb.RunDelta(text=reply))
        else:
            for chunk in _WORD.findall(reply):
                yield pb.RunEvent(delta=pb.RunDelta(text=chunk))
        await self._client.evalsha(self._finish, 1, key + ":out", index, reply)
        yield pb.RunEvent(
            completed=pb.RunCompleted(turn=pb.Turn(index=index, input=text, output=reply))
        )


async def serve(address: str, redis_url: str, *, join: bool = False) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    begin_sha = await client.script_load(BEGIN)
    finish_sha = await client.script_load(FINISH)
    server = grpc.aio.server()
    # Only Run is served: the generated base answers the other methods UNIMPLEMENTED.
    servicer = ReferenceServicer(client, begin_sha, finish_sha, join=join)  # type: ignore[abstract]
    sessions_pb2_grpc.add_SessionServiceServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--address", required=True, help="host:port to listen on")
    parser.add_argument("--redis-url", required=True, help="redis://host:port/db")
    parser.add_argument("--join", action="store_true", help="send the reply as one delta")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.redis_url, join=args.join))


if __name__ == "__main__":
    main()
