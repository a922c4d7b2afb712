"""Commands packed by hiredis are the very bytes redis-py packs."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import AbstractConnection, Connection

from agent_sessions.store.redis.packing import with_hiredis_packing

PYTHON = Connection(encoding_errors="surrogateescape")
HIREDIS = with_hiredis_packing(Connection)(encoding_errors="surrogateescape")

ARGUMENTS = st.lists(
    st.one_of(
        st.text(),
        st.binary(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
    ),
    max_size=30,
)


def packed(connection: AbstractConnection, *args: Any) -> bytes:
    return b"".join(connection.pack_command(*args))


@given(ARGUMENTS)
def test_any_arguments_pack_as_redis_py_packs_them(arguments: list[Any]) -> None:
    assert packed(HIREDIS, "EVALSHA", *arguments) == packed(PYTHON, "EVALSHA", *arguments)


def test_a_string_with_escaped_surrogates_packs_as_the_bytes_it_came_from() -> None:
    text = b"Z2\x28\xb5\x2f\xfd".decode("utf-8", "surrogateescape")  # a zstd frame's start

    assert packed(HIREDIS, "RPUSH", "k", text) == packed(PYTHON, "RPUSH", "k", text)


def test_a_command_of_two_words_is_two_arguments() -> None:
    assert packed(HIREDIS, "SCRIPT LOAD", "return 1") == packed(PYTHON, "SCRIPT LOAD", "return 1")
