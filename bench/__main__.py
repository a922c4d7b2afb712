"""`make bench`: Run throughput and latency over real gRPC, for the memory and Redis stores.

The server runs as its own process (as in production) with the echo agent; this
process is the load client. Figures vary 10-20% between identical runs: compare
figures from one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sessions.v1 import sessions_pb2 as pb

from tests.grpc_helpers import Stub
from tests.redis_server import RedisServer, free_port

TEXT = "How's the weather in Shanghai today?"


@contextmanager
def session_server(store_url: str) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    command = [
        str(Path(sys.executable).parent / "session-server"),
        "--address",
        address,
        "--store",
        store_url,
        "--log-level",
        "WARNING",
        "--default-agent",
        "echo",
    ]
    process = subprocess.Popen(command)
    try:
        asyncio.run(_wait_serving(address))
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


async def _wait_serving(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server on {address} did not become healthy")


async def one_turn(stub: Stub, session: pb.Session) -> float:
    started = time.perf_counter()
    call = stub.Run(
        pb.RunRequest(session_id=session.session_id, user_id=session.user_id, input=TEXT)
    )
    async for _ in call:
        pass
    return time.perf_counter() - started


async def throughput(address: str, concurrency: int, seconds: float) -> tuple[float, float, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        sessions = [
            await stub.CreateSession(pb.CreateSessionRequest(user_id=f"bench-{i}", agent_id="echo"))
            for i in range(concurrency)
        ]
        for session in sessions:  # warm up connections and code paths
            await one_turn(stub, session)
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker(session: pb.Session) -> None:
            while time.perf_counter() < deadline:
                latencies.append(await one_turn(stub, session))

        began = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in sessions))
        elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000


async def long_session(address: str, turns: int, samples: int) -> tuple[float, float]:
    """The p50 of an early turn against the p50 of turn ``turns`` onwards of one session.

    Early and late turns are measured alternately, so that drift in the machine's
    speed during the run weighs on both alike. The early turn is each fresh
    session's turn 2: turn 1's echo reply is shorter (there is no previous input).
    """
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        long = await stub.CreateSession(pb.CreateSessionRequest(user_id="long", agent_id="echo"))
        for _ in range(turns - 1):
            await one_turn(stub, long)
        early: list[float] = []
        late: list[float] = []
        for i in range(samples):
            fresh = await stub.CreateSession(
                pb.CreateSessionRequest(user_id=f"fresh-{i}", agent_id="echo")
            )
            await one_turn(stub, fresh)
            early.append(await one_turn(stub, fresh))
            late.append(await one_turn(stub, long))
    return statistics.median(early) * 1000, statistics.median(late) * 1000


def bench_store(name: str, store_url: str, seconds: float, turns: int) -> None:
    with session_server(store_url) as address:
        for concurrency in (1, 16, 64):
            rate, p50, p99 = asyncio.run(throughput(address, concurrency, seconds))
            print(
                f"{name:6} C={concurrency:<3} {rate:8.0f} runs/s"
                f"   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
            )
        samples = 200
        early, late = asyncio.run(long_session(address, turns, samples))
        print(
            f"{name:6} turn 2 p50 {early:.2f} ms, turn {turns}+ p50 {late:.2f} ms "
            f"({samples} each, interleaved): ratio {late / early:.2f} (target <= 1.2)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="load time per concurrency")
    parser.add_argument("--turns", type=int, default=1000, help="turns in the long session")
    args = parser.parse_args()
    print(f"Run with the echo agent ({len(TEXT)}-character input), server in its own process")
    bench_store("memory", "memory://", args.seconds, args.turns)
    redis = RedisServer()
    redis.start()
    try:
        bench_store("redis", redis.url, args.seconds, args.turns)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
