"""Writes the blocking client, ``_sync.py``, from the asyncio client, ``_async.py``.

The two clients are one source, as httpcore's are: ``_async.py`` is the one edited, and
this script rewrites it into ``_sync.py`` with the substitutions of ``RULES`` (``async
def`` to ``def``, ``await x`` to ``x``, ``AsyncSession`` to ``Session``, ``grpc.aio`` to
``grpc``...), then sorts the imports and formats the result with ruff, since a line
without its ``await`` may now fit where the formatter would have joined it.

::

    python clients/python/scripts/unasync.py              # rewrite _sync.py
    python clients/python/scripts/unasync.py --check      # exit 1 if _sync.py is stale
    python clients/python/scripts/unasync.py --output F   # write the result to F instead

Runs with an interpreter that has ruff installed (the project's dev venv).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agent_sessions_client"
SOURCE = PACKAGE / "_async.py"
TARGET = PACKAGE / "_sync.py"

# In order: the multi-word rewrites come before the single words they contain.
RULES: list[tuple[re.Pattern[str], str]] = [
    # The module docstring says which client it is.
    (re.compile(r'^"""The asyncio client', re.MULTILINE), '"""The blocking client'),
    # grpc's blocking API has no grpc.aio prefix, and one exception for every failed call.
    (re.compile(r"\bgrpc\.aio\.AioRpcError\b"), "grpc.RpcError"),
    (re.compile(r"\bgrpc\.aio\."), "grpc."),
    # grpc.aio's Channel.close takes the grace period (None: cancel the calls at once);
    # grpc's cancels them at once and takes none.
    (re.compile(r"\.close\(None\)"), ".close()"),
    # grpc-stubs type the cancel() of an asyncio call but not that of a blocking one.
    (
        re.compile(r"^(\s*)call\.cancel\(\)$", re.MULTILINE),
        r"\1call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs lack its types",
    ),
    # A comprehension that only gathers an async iterator is a list() of the iterator.
    (re.compile(r"\[\s*(\w+) async for \1 in\s+([^\[\]]+?)\s*\]"), r"list(\2)"),
    (re.compile(r"\basync (def|for|with)\b"), r"\1"),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\b__a(enter|exit|iter|next)__\b"), r"__\1__"),
    # AsyncSessionClient, AsyncSession, AsyncIterator; and the stub class of grpc.aio that
    # mypy-protobuf names SessionServiceAsyncStub.
    (re.compile(r"\bAsync([A-Z]\w*)"), r"\1"),
    (re.compile(r"(\w)AsyncStub\b"), r"\1Stub"),
]

# What no rule may leave behind: a construct the rules do not cover yet.
LEFTOVER = re.compile(r"\b(async|await|aio|asyncio)\b|Async[A-Z]|__a(enter|exit|iter|next)__")


def unasync(source: str) -> str:
    """The blocking client's source for the asyncio client's, before formatting."""
    for pattern, replacement in RULES:
        source = pattern.sub(replacement, source)
    for number, line in enumerate(source.splitlines(), start=1):
        code = line.split("#", 1)[0]  # comments may name _async.py and the like
        if LEFTOVER.search(code):
            raise SystemExit(f"{SOURCE.name}:{number}: no rule makes this blocking: {line.strip()}")
    return source


def ruff(*args: str, source: str) -> str:
    """``source`` passed through ruff as if it were TARGET, so that the project's settings apply."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--quiet", "--stdin-filename", str(TARGET)],
        input=source,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff {args[0]} failed on the generated code:\n{result.stderr}")
    return result.stdout


def generate() -> str:
    """The content ``_sync.py`` must have."""
    blocking = unasync(SOURCE.read_text(encoding="utf-8"))
    # A renamed import may now sort elsewhere: isort's fixes first, then the layout.
    blocking = ruff("check", "--select", "I", "--fix", source=blocking)
    return ruff("format", source=blocking)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if _sync.py is not current")
    mode.add_argument("--output", metavar="PATH", type=Path, help="write here, not to _sync.py")
    args = parser.parse_args()
    generated = generate()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != generated:
            sys.stderr.write(f"{TARGET} is stale: run clients/python/scripts/unasync.py\n")
            return 1
        return 0
    (args.output or TARGET).write_text(generated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
