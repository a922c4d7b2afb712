"""The Redis store: sessions shared by every server process, expired by Redis itself.

Each call is one EVALSHA of a script from :mod:`agent_sessions.store.redis_scripts`,
which checks and writes atomically; this module only packs arguments, maps the
scripts' status tags to domain errors and decodes replies. Automatic retries are off
because not every script is idempotent: callers retry with request ids.

The client is one Redis server's or a Redis Cluster's (``redis+cluster://``). On a
cluster, EVALSHA goes to the master of its first key's slot, and every script's keys
share the user's hash tag, so one slot. Redirections (MOVED, ASK, TRYAGAIN) are still
followed: a redirected script has not run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from zstandard import ZstdCompressor, ZstdDecompressor

from agent_sessions.errors import (
    EtagMismatch,
    FoldConflict,
    MaxTurnsReached,
    RunSuperseded,
    SessionAlreadyExists,
    SessionEnded,
    SessionNotFound,
    StoreUnavailable,
    TooManySessions,
    TurnInProgress,
)
from agent_sessions.model import (
    Fold,
    JsonValue,
    RunningTurn,
    Session,
    SessionCursor,
    SessionPage,
    SessionPatch,
    SessionStatus,
    TokenUsage,
    Turn,
    TurnOutcome,
    TurnPage,
    TurnStart,
    TurnStatus,
    etag_of,
)
from agent_sessions.store import redis_scripts
from agent_sessions.store.redis_cluster import (
    CLUSTER_SCHEMES,
    cluster_client,
    gate_of,
    has_hash_tag,
)

# On a cluster also: CLUSTERDOWN and redirections that never settle (ClusterError), and
# a topology that cannot be read or leaves slots uncovered (RedisClusterException).
_UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
)

_NON_LOCAL_KEY = "Script attempted to access a non local key"


_Client = redis.asyncio.Redis | RedisCluster

_SESSION_STATUS = {int(s): s for s in SessionStatus}
_TURN_STATUS = {int(s): s for s in TurnStatus}
_COMPLETED = int(TurnStatus.COMPLETED)

_json_decode = json.loads
_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_json_encode = _json_encoder.encode

_Arg = str | int | bytes

_ZSTD_MARK = "Z"
_zstd_compress = ZstdCompressor(level=3).compress
_zstd_decompress = ZstdDecompressor().decompress
DEFAULT_COMPRESS_OVER_BYTES = 512


class RedisSessionStore:
    """A :class:`~agent_sessions.store.SessionStore` in Redis (7.0 or later).

    ``client``, of one server or of a cluster, must decode responses
    (``decode_responses=True``) with ``encoding_errors="surrogateescape"``, which carries
    compressed turns through as text. All keys start with ``prefix``; each session's
    keys carry its user's ``{user_id}`` hash tag, so a script touches one cluster slot.
    Finished turns of ``compress_over_bytes`` or more are stored zstd-compressed (0: never).
    """

    def __init__(
        self,
        client: _Client,
        *,
        prefix: str = "sessions:",
        owns_client: bool = False,
        compress_over_bytes: int = DEFAULT_COMPRESS_OVER_BYTES,
    ) -> None:
        # Both clients decode replies as their encoder says.
        encoder = client.get_encoder()
        if not encoder.decode_responses or encoder.encoding_errors != "surrogateescape":
            raise ValueError(
                "RedisSessionStore needs a client with decode_responses=True and "
                'encoding_errors="surrogateescape"'
            )
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._compress_over = compress_over_bytes
        self._gate = gate_of(client)
        self._create = client.register_script(redis_scripts.CREATE)
        self._get = client.register_script(redis_scripts.GET)
        self._list = client.register_script(redis_scripts.LIST)
        self._update = client.register_script(redis_scripts.UPDATE)
        self._end = client.register_script(redis_scripts.END)
        self._delete = client.register_script(redis_scripts.DELETE)
        self._begin_turn = client.register_script(redis_scripts.BEGIN_TURN)
        self._finish_turn = client.register_script(redis_scripts.FINISH_TURN)
        self._list_turns = client.register_script(redis_scripts.LIST_TURNS)
        self._fold = client.register_script(redis_scripts.FOLD)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sessions:",
        socket_timeout: float = 5.0,
        max_connections: int = 64,
        compress_over_bytes: int = DEFAULT_COMPRESS_OVER_BYTES,
    ) -> RedisSessionStore:
        """A store with a client of its own, closed by :meth:`close`.

        ``url`` is ``redis://`` or ``rediss://`` for one server, ``redis+cluster://`` or
        ``rediss+cluster://`` with one or more ``host:port`` (comma-separated) of a
        cluster, which the client discovers from them. When all ``max_connections``
        (per cluster node) are busy a call waits up to ``socket_timeout`` for one rather
        than failing at once.
        """
        if urlsplit(url).scheme in CLUSTER_SCHEMES:
            if has_hash_tag(prefix):
                raise ValueError(
                    f"key prefix {prefix!r} holds a {{...}} hash tag: on a cluster every "
                    "session would share one slot (or, with {}, a session's keys would "
                    "not share one)"
                )
            return cls(
                cluster_client(url, socket_timeout, max_connections),
                prefix=prefix,
                owns_client=True,
                compress_over_bytes=compress_over_bytes,
            )
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            decode_responses=True,
            encoding_errors="surrogateescape",
            retry=Retry(NoBackoff(), 0),
        )
        return cls(
            redis.asyncio.Redis.from_pool(pool),
            prefix=prefix,
            owns_client=True,
            compress_over_bytes=compress_over_bytes,
        )

    async def create(self, session: Session, *, max_sessions_per_user: int = 0) -> Session:
        """Stores a new session; raises ``SessionAlreadyExists`` if its id is taken and
        ``TooManySessions`` if its user has ``max_sessions_per_user`` live ones."""
        return await self._insert(session, (), max_sessions_per_user)

    async def import_session(
        self, session: Session, turns: Sequence[Turn], *, max_sessions_per_user: int = 0
    ) -> Session:
        """Stores a new session with a finished history; raises as :meth:`create` does.

        One script writes the session, its turns (as :meth:`finish_turn` leaves them) and
        their request ids.
        """
        return await self._insert(session, turns, max_sessions_per_user)

    async def _insert(self, session: Session, turns: Sequence[Turn], max_sessions: int) -> Session:
        running = session.running
        args: list[_Arg] = [
            session.create_time_ms,
            session.session_id,
            max_sessions,
            self._user_key(session.user_id) + ":s:",
            # The values of redis_scripts.META_FIELDS, in order.
            session.user_id,
            session.agent_id,
            int(session.status),
            session.create_time_ms,
            session.update_time_ms,
            session.last_activity_ms,
            session.ttl_ms,
            session.idle_timeout_ms,
            session.max_turns,
            session.turn_count,
            session.total_turns,
            session.version,
            _json_encode(session.labels),
            session.summary,
            running.index if running else 0,
            running.run_id if running else "",
            running.lease_until_ms if running else 0,
            session.create_request_id,
            session.folded_turns,
            session.history_bytes,
            session.expire_time_ms,
        ]
        # A later turn with the same request id wins, as in begin_turn.
        requests = {t.request_id: t.index for t in turns if t.request_id}
        args += (len(turns), len(requests))
        args += (self._record(t) for t in turns)
        for request_id, index in requests.items():
            args += (request_id, index)
        _append_state(args, session.state)
        reply = await self._run(self._create, self._keys(session.user_id, session.session_id), args)
        if reply[0] == "LIMIT":
            raise TooManySessions(session.user_id, max_sessions)
        if reply[0] != "OK":
            raise SessionAlreadyExists(session.session_id)
        return _session(session.session_id, reply[1], reply[2])

    async def get(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """The live session; raises ``SessionNotFound``."""
        base = self._session_key(user_id, session_id)
        reply = await self._run(self._get, (base, base + ":state"), (now_ms,))
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return _session(session_id, reply[1], reply[2])

    async def list(
        self,
        *,
        user_id: str,
        agent_id: str | None,
        page_size: int,
        after: SessionCursor | None,
        now_ms: int,
    ) -> SessionPage:
        """Live sessions of a user, most recent activity first, ties by id descending."""
        user = self._user_key(user_id)
        args: list[_Arg] = [now_ms, user + ":s:", agent_id or "", page_size]
        if after is not None:
            args += ("1", after.last_activity_ms, after.session_id)
        reply = await self._run(self._list, (user + ":index",), args)
        sessions = [_session(session_id, meta, state) for session_id, meta, state in reply[2]]
        next_cursor = None
        if reply[1] and sessions:
            last = sessions[-1]
            next_cursor = SessionCursor(last.last_activity_ms, last.session_id)
        return SessionPage(sessions, next_cursor)

    async def update(
        self,
        *,
        user_id: str,
        session_id: str,
        patch: SessionPatch,
        expected_etag: str | None,
        now_ms: int,
    ) -> Session:
        """Applies the patch; raises ``EtagMismatch`` when ``expected_etag`` is stale."""
        fields: list[_Arg] = []
        if patch.labels is not None:
            fields += ("labels", _json_encode(patch.labels))
        if patch.ttl_ms is not None:
            fields += ("ttl_ms", patch.ttl_ms)
        if patch.idle_timeout_ms is not None:
            fields += ("idle_ms", patch.idle_timeout_ms)
        if patch.max_turns is not None:
            fields += ("max_turns", patch.max_turns)
        args: list[_Arg] = [
            now_ms,
            session_id,
            "" if expected_etag is None else "1",
            expected_etag or "",
            "" if patch.state is None else "1",
            len(fields) // 2,
            *fields,
        ]
        if patch.state is not None:
            _append_state(args, patch.state)
        reply = await self._run(self._update, self._keys(user_id, session_id), args)
        tag = reply[0]
        if tag == "OK":
            return _session(session_id, reply[1], reply[2])
        if tag == "ETAG":
            raise EtagMismatch(session_id, expected_etag or "", etag_of(int(reply[1])))
        raise SessionNotFound(session_id)

    async def end(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """Marks the session ENDED (idempotent); it stays readable until it expires."""
        reply = await self._run(self._end, self._keys(user_id, session_id), (now_ms, session_id))
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return _session(session_id, reply[1], reply[2])

    async def delete(self, *, user_id: str, session_id: str, now_ms: int) -> None:
        """Removes the session, its turns and its listing; raises ``SessionNotFound``."""
        reply = await self._run(self._delete, self._keys(user_id, session_id), (now_ms, session_id))
        if reply[0] != "OK":
            raise SessionNotFound(session_id)

    async def begin_turn(
        self,
        *,
        user_id: str,
        session_id: str,
        text: str,
        request_id: str,
        run_id: str,
        lease_ms: int,
        history_turns: int,
        now_ms: int,
    ) -> TurnStart:
        """Records a new IN_PROGRESS turn with the user's input and returns the context.

        Checks, in the order of :meth:`SessionStore.begin_turn
        <agent_sessions.store.protocol.SessionStore.begin_turn>`, in one script.
        """
        open_turn = _turn_head(now_ms, request_id, text) + redis_scripts.OPEN_TURN_TAIL
        args = (
            now_ms,
            session_id,
            request_id,
            run_id,
            now_ms + lease_ms,
            history_turns,
            open_turn,
            len(text.encode()),
        )
        reply = await self._run(self._begin_turn, self._keys(user_id, session_id), args)
        tag = reply[0]
        if tag == "OK":
            session = _session(session_id, reply[1], reply[2])
            history = [
                _turn_of(fields, position)
                for position, fields in enumerate(_decode_turns(reply[4]), reply[3] + 1)
                if fields["s"] == _COMPLETED
            ]
            turn = Turn(
                index=session.total_turns,
                status=TurnStatus.IN_PROGRESS,
                input=text,
                create_time_ms=now_ms,
                request_id=request_id,
            )
            return TurnStart(session, turn, history)
        if tag == "REPLAY":
            session = _session(session_id, reply[1], reply[2])
            return TurnStart(session, _turn(reply[4], reply[3]), [], replayed=True)
        if tag == "ENDED":
            raise SessionEnded(session_id)
        if tag == "MAX_TURNS":
            raise MaxTurnsReached(session_id, reply[1])
        if tag == "BUSY":
            raise TurnInProgress(session_id, reply[1])
        raise SessionNotFound(session_id)

    async def finish_turn(
        self,
        *,
        user_id: str,
        session_id: str,
        turn: Turn,
        run_id: str,
        outcome: TurnOutcome,
        now_ms: int,
    ) -> tuple[Turn, Session]:
        """Stores the turn's outcome, state delta and counters in one atomic step.

        Raises ``RunSuperseded`` when ``run_id`` no longer owns the turn.
        """
        completed = outcome.status is TurnStatus.COMPLETED
        finished = dataclasses.replace(
            turn,
            status=outcome.status,
            output=outcome.output if completed else "",
            error=outcome.error,
            complete_time_ms=now_ms,
            usage=outcome.usage,
        )
        args: list[_Arg] = [
            now_ms,
            session_id,
            turn.index,
            run_id,
            "1" if completed else "",
            self._record(finished),
            len(finished.output.encode()),
        ]
        delta = outcome.state_delta
        if completed and delta:
            args.append(len(delta.delete))
            args += delta.delete
            _append_state(args, delta.set)
        else:
            args.append(0)
        reply = await self._run(self._finish_turn, self._keys(user_id, session_id), args)
        if reply[0] != "OK":
            raise RunSuperseded(session_id, turn.index)
        return finished, _session(session_id, reply[1], reply[2])

    async def list_turns(
        self,
        *,
        user_id: str,
        session_id: str,
        start_index: int | None,
        limit: int,
        newest_first: bool,
        include_archived: bool,
        now_ms: int,
    ) -> TurnPage:
        """Up to ``limit`` turns from ``start_index`` on, by index, in one script."""
        base = self._session_key(user_id, session_id)
        args = (
            now_ms,
            "" if start_index is None else start_index,
            limit,
            "1" if newest_first else "",
            "1" if include_archived else "",
        )
        reply = await self._run(self._list_turns, (base, base + ":turns", base + ":archive"), args)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        pairs = reply[2]
        indexes, records = pairs[::2], pairs[1::2]
        turns = [
            _turn_of(fields, index)
            for index, fields in zip(indexes, _decode_turns(records), strict=True)
        ]
        return TurnPage(turns, reply[1] or None)

    async def fold(self, *, user_id: str, session_id: str, fold: Fold, now_ms: int) -> Session:
        """Folds turns into the summary in one script; see ``SessionStore.fold``."""
        args: list[_Arg] = [
            now_ms,
            session_id,
            fold.create_time_ms,
            fold.first_index,
            fold.last_index,
            fold.summary,
            fold.folded_bytes,
            "1" if fold.archive else "",
            *fold.request_ids,
        ]
        reply = await self._run(self._fold, self._keys(user_id, session_id), args)
        if reply[0] == "CONFLICT":
            raise FoldConflict(session_id)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return _session(session_id, reply[1], reply[2])

    def _record(self, turn: Turn) -> str | bytes:
        """A finished turn as Redis keeps it: JSON, or compressed when large."""
        text = _turn_json(turn)
        if not self._compress_over or len(text) * 4 < self._compress_over:
            return text  # too short even at 4 bytes per character
        raw = text.encode()
        if len(raw) < self._compress_over:
            return text
        packed = _zstd_compress(raw)
        if len(packed) + 2 >= len(raw):
            return text
        return f"{_ZSTD_MARK}{int(turn.status)}".encode() + packed

    def namespace(self, name: str) -> RedisSessionStore:
        """The store of tenant ``name``: keys under ``<prefix>t:<name>:``, same client."""
        tenant = RedisSessionStore(
            self._client,
            prefix=f"{self._prefix}t:{name}:",
            compress_over_bytes=self._compress_over,
        )
        tenant._gate = self._gate  # the same connections
        return tenant

    async def ping(self) -> None:
        """Returns when Redis (every cluster master) answers; raises ``StoreUnavailable``
        otherwise."""
        try:
            async with self._gate:
                if isinstance(self._client, RedisCluster):
                    # A dead master fails its users' calls: the store is not fully serving.
                    await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
                else:
                    await self._client.ping()
        except _UNREACHABLE as error:
            raise _unavailable(error) from error

    async def close(self) -> None:
        """Closes the client if this store created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[_Arg]) -> Any:
        try:
            async with self._gate:
                return await script(keys, args)
        except _UNREACHABLE as error:
            raise _unavailable(error) from error
        except redis.exceptions.OutOfMemoryError as error:
            # maxmemory reached under noeviction: Redis refuses writes, and keeps data.
            raise StoreUnavailable(
                f"Redis is out of memory and refuses writes ({error}); raise its maxmemory "
                "or compress and end sessions"
            ) from error
        except redis.exceptions.ResponseError as error:
            # LIST and CREATE also read session keys they are not given, of their slot:
            # while resharding moves the slot, some may have left, and Redis fails the
            # script at that read, before it writes. Once the slot has moved, it works.
            if str(error).startswith(_NON_LOCAL_KEY):
                raise _unavailable(error) from error
            raise

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}{{{user_id}}}"

    def _session_key(self, user_id: str, session_id: str) -> str:
        return f"{self._prefix}{{{user_id}}}:s:{session_id}"

    def _keys(self, user_id: str, session_id: str) -> tuple[str, ...]:
        user = f"{self._prefix}{{{user_id}}}"
        base = f"{user}:s:{session_id}"
        return (
            base,
            base + ":state",
            base + ":turns",
            base + ":requests",
            user + ":index",
            base + ":archive",
        )


def _unavailable(error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"Redis cannot be reached: {error}")


def _append_state(args: list[_Arg], state: dict[str, JsonValue]) -> None:
    for key, value in state.items():
        args += (key, _json_encode(value))


def _session(session_id: str, meta: list[str], state: list[str]) -> Session:
    # The order of redis_scripts.META_FIELDS.
    (
        user_id,
        agent_id,
        status,
        create_ms,
        update_ms,
        activity_ms,
        ttl_ms,
        idle_ms,
        max_turns,
        turn_count,
        total_turns,
        version,
        labels,
        summary,
        run_index,
        run_id,
        lease_ms,
        create_request_id,
        folded_turns,
        history_bytes,
        _expire_ms,
    ) = meta
    pairs = iter(state)
    return Session(
        session_id=session_id,
        user_id=user_id,
        agent_id=agent_id,
        status=_SESSION_STATUS[int(status)],
        create_time_ms=int(create_ms),
        update_time_ms=int(update_ms),
        last_activity_ms=int(activity_ms),
        ttl_ms=int(ttl_ms),
        idle_timeout_ms=int(idle_ms),
        max_turns=int(max_turns),
        turn_count=int(turn_count),
        total_turns=int(total_turns),
        state={key: _json_decode(value) for key, value in zip(pairs, pairs, strict=True)},
        labels=_json_decode(labels) if labels != "{}" else {},
        summary=summary,
        version=int(version),
        running=RunningTurn(int(run_index), run_id, int(lease_ms)) if run_index != "0" else None,
        create_request_id=create_request_id,
        # Sessions written before compression existed lack these fields.
        folded_turns=int(folded_turns or 0),
        history_bytes=int(history_bytes or 0),
    )


def _turn_head(create_ms: int, request_id: str, text: str) -> str:
    """The start of a turn's JSON: the fields that never change (see ``OPEN_TURN_TAIL``)."""
    return f'{{"ct":{create_ms},"rq":{_json_encode(request_id)},"in":{_json_encode(text)}'


def _turn_tail(
    status: TurnStatus, complete_ms: int, output: str, error: str, usage: TokenUsage
) -> str:
    """The end of a finished turn's JSON, which replaces ``OPEN_TURN_TAIL``."""
    return (
        f',"s":{int(status)},"dt":{complete_ms},'
        f'"out":{_json_encode(output)},"err":{_json_encode(error)},'
        f'"ti":{usage.input_tokens},"to":{usage.output_tokens}}}'
    )


def _turn_json(turn: Turn) -> str:
    """A finished turn as the turns list holds it; its index is its position."""
    return _turn_head(turn.create_time_ms, turn.request_id, turn.input) + _turn_tail(
        turn.status, turn.complete_time_ms, turn.output, turn.error, turn.usage
    )


def _decode_turns(elements: list[str]) -> list[dict[str, Any]]:
    if any(element.startswith(_ZSTD_MARK) for element in elements):
        return [_decode_turn(element) for element in elements]
    # One parse of the joined elements costs far less than a json.loads call each.
    decoded: list[dict[str, Any]] = _json_decode("[" + ",".join(elements) + "]")
    return decoded


def _decode_turn(element: str) -> dict[str, Any]:
    if element.startswith(_ZSTD_MARK):
        # Mark, status digit, then the zstd frame: bytes that surrogateescape kept intact.
        element = _zstd_decompress(element[2:].encode("utf-8", "surrogateescape")).decode()
    fields: dict[str, Any] = _json_decode(element)
    return fields


def _turn(element: str, index: int) -> Turn:
    return _turn_of(_decode_turn(element), index)


def _turn_of(fields: dict[str, Any], index: int) -> Turn:
    return Turn(
        index=index,
        status=_TURN_STATUS[fields["s"]],
        input=fields["in"],
        create_time_ms=fields["ct"],
        output=fields["out"],
        complete_time_ms=fields["dt"],
        request_id=fields["rq"],
        error=fields["err"],
        # A turn failed by the lease script has no usage.
        usage=TokenUsage(fields.get("ti", 0), fields.get("to", 0)),
    )
