"""The Redis store: sessions shared by every server process, expired by Redis itself.

Each call is one EVALSHA of a script from :mod:`.scripts`, which checks and writes
atomically. This module only orchestrates: it names the keys (:mod:`.keys`), encodes the
arguments and decodes the replies (:mod:`.codec`), and maps the scripts' status tags to
domain errors. Automatic retries are off because not every script is idempotent: callers
retry with request ids.

The client is one Redis server's or a Redis Cluster's (``redis+cluster://``). On a
cluster, EVALSHA goes to the master of its first key's slot. Redirections (MOVED, ASK,
TRYAGAIN) are still followed: a redirected script has not run.

Why the hash tag is the user's
------------------------------
On a cluster a script runs on one master, and its keys must share one slot. Every key of
a user, their index of sessions and every key of each of their sessions, carries the
``{user_id}`` hash tag, so all of them hash to one slot. A tag per session would spread a
user's sessions over the masters, but these single steps span several of a user's
sessions, and could no longer be one script:

- a create checks the sessions-per-user limit (counting the user's live sessions by
  reading theirs) and adds the session to the user's index, atomically, so that
  concurrent creates cannot pass the limit together;
- every write moves its session in the user's index (by activity) as it commits, so a
  listing neither shows a session that is gone nor misses one;
- a listing pages through the index and reads the sessions it names in one step;
- the user's state (``user:`` keys) commits with a turn or an append of any of their
  sessions.

The cost: all of a user's sessions live in one slot, so on one master. A very heavy user
(many sessions, long histories, many turns a second) is bounded by that master's memory
and throughput; more masters spread users, not one user's sessions. Users spread over
the masters by a hash of their id, evenly only on average: a few heavy users make their
masters hotter than the others. A caller that must go past that splits such a user into
several user ids, and gives up the per-user limit, listing and state across the parts.

Where the app's state is
------------------------
The app's state (``app:`` keys) is shared by every user, so no user's slot can hold it.
On one server the scripts get its key and write it with the rest of the commit. On a
cluster they cannot: a commit queues its ``app:`` changes in the user's outbox, in the
user's slot and in the same script, and this store applies the outbox to the app's
state (one more script, on the app's slot) before it answers. The commit itself stays
atomic; a process that dies in between leaves the changes queued, and the user's next
app-state write applies them first. Replies on a cluster read the app's state apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from agent_sessions import scopes
from agent_sessions.errors import (
    EtagMismatch,
    ExternalAgentSession,
    FoldConflict,
    MaxTurnsReached,
    NotReplicated,
    RunSuperseded,
    SequenceMismatch,
    SessionAlreadyExists,
    SessionEnded,
    SessionError,
    SessionNotFound,
    StoreUnavailable,
    TooManySessions,
    TurnInProgress,
)
from agent_sessions.model import (
    Fold,
    Item,
    ItemPage,
    ItemsWrite,
    ItemsWritten,
    Session,
    SessionCursor,
    SessionPage,
    SessionPatch,
    Turn,
    TurnOutcome,
    TurnPage,
    TurnStart,
    TurnStatus,
    etag_of,
)
from agent_sessions.session_events import (
    DEFAULT_EVENT_WINDOW,
    EventKind,
    EventWindow,
    SessionEvent,
)
from agent_sessions.store.redis import codec, scripts
from agent_sessions.store.redis.cluster import CLUSTER_SCHEMES, cluster_client
from agent_sessions.store.redis.codec import DEFAULT_COMPRESS_OVER_BYTES, Arg
from agent_sessions.store.redis.connection import store_connection
from agent_sessions.store.redis.gate import gate_of
from agent_sessions.store.redis.keys import KeySpace
from agent_sessions.store.redis.replication import Replicated, waiting_write, waits_for_replicas
from agent_sessions.store.redis.sentinel import (
    SENTINEL_SCHEMES,
    SentinelPrimary,
    check_sentinels,
    sentinel_client,
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

_Flat = list[str]
"""A reply's array of strings (the class's ``list`` method hides the builtin)."""
_Entries = list[tuple[str, dict[str, str]]]
"""A stream read's entries: (id, fields)."""
_OUTBOX_BATCH = 100
"""App-state writes applied per round trip when a user's outbox is drained."""
_NON_LOCAL_KEY = "Script attempted to access a non local key"
_READ_BATCH = 256
"""Log entries a watcher reads per round trip."""

_Client = redis.asyncio.Redis | RedisCluster


class RedisSessionStore:
    """A :class:`~agent_sessions.store.SessionStore` in Redis (7.0 or later).

    ``client``, of one server or of a cluster, must decode responses
    (``decode_responses=True``) with ``encoding_errors="surrogateescape"``, which carries
    compressed turns through as text. All keys start with ``prefix``; each session's
    keys carry its user's ``{user_id}`` hash tag, so a script touches one cluster slot.
    Finished turns of ``compress_over_bytes`` or more are stored zstd-compressed (0: never).

    With ``min_replicas``, every write the store acknowledges (create, a turn's commit,
    appends, updates, end, delete, compression) first waits, in the same round trip, until
    that many replicas hold it; when fewer confirm within ``replica_timeout_ms`` the call
    raises ``StoreUnavailable`` (the write is done on the primary: a retry with the same
    request id completes it without doing it twice). The client's connections must send
    WAIT behind such writes (``connection.store_connection``), as :meth:`from_url`'s do.
    """

    def __init__(
        self,
        client: _Client,
        *,
        prefix: str = "sessions:",
        owns_client: bool = False,
        compress_over_bytes: int = DEFAULT_COMPRESS_OVER_BYTES,
        event_window: EventWindow = DEFAULT_EVENT_WINDOW,
        min_replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> None:
        # Both clients decode replies as their encoder says.
        encoder = client.get_encoder()
        if not encoder.decode_responses or encoder.encoding_errors != "surrogateescape":
            raise ValueError(
                "RedisSessionStore needs a client with decode_responses=True and "
                'encoding_errors="surrogateescape"'
            )
        if min_replicas and not waits_for_replicas(_connection_class(client)):
            raise ValueError(
                "min_replicas needs a client whose connections send WAIT behind writes "
                "(connection.store_connection); RedisSessionStore.from_url makes one"
            )
        self._client = client
        self._min_replicas = min_replicas
        self._replica_timeout_ms = replica_timeout_ms
        self._waiting_write = waiting_write(min_replicas, replica_timeout_ms)
        # On a cluster the app's state is in another slot than its users' keys.
        self._keys = KeySpace(prefix, app_outbox=isinstance(client, RedisCluster))
        self._app = ""
        self._owns_client = owns_client
        self._compress_over = compress_over_bytes
        self._gate = gate_of(client)
        # A watcher holds a connection while it waits for events: watchers may hold half
        # of them at most, and the rest wait their turn, so that calls always find one.
        self._watch_places = asyncio.Semaphore(max(1, _pool_size(client) // 2))
        # A blocking read must return before the socket times out.
        self._block_ms = max(1, min(event_window.idle_check_ms, _socket_timeout_ms(client) // 2))
        source = scripts.sources(app_outbox=self._keys.app_outbox, window=event_window)
        self._create = client.register_script(source["create"])
        self._get = client.register_script(source["get"])
        self._list = client.register_script(source["list"])
        self._update = client.register_script(source["update"])
        self._end = client.register_script(source["end"])
        self._delete = client.register_script(source["delete"])
        self._begin_turn = client.register_script(source["begin_turn"])
        self._renew_lease = client.register_script(source["renew_lease"])
        self._finish_turn = client.register_script(source["finish_turn"])
        self._list_turns = client.register_script(source["list_turns"])
        self._fold = client.register_script(source["fold"])
        self._write_items = client.register_script(source["write_items"])
        self._list_items = client.register_script(source["list_items"])
        self._pop_item = client.register_script(source["pop_item"])
        self._clear_items = client.register_script(source["clear_items"])
        self._apply_app_state = client.register_script(source["apply_app_state"])
        self._publish = client.register_script(source["publish"])

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sessions:",
        socket_timeout: float = 5.0,
        max_connections: int = 64,
        compress_over_bytes: int = DEFAULT_COMPRESS_OVER_BYTES,
        event_window: EventWindow = DEFAULT_EVENT_WINDOW,
        min_replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> RedisSessionStore:
        """A store with a client of its own, closed by :meth:`close`.

        ``url`` is ``redis://`` or ``rediss://`` for one server, ``redis+cluster://`` or
        ``rediss+cluster://`` with one or more ``host:port`` (comma-separated) of a
        cluster, which the client discovers from them, or ``redis+sentinel://`` (and
        ``rediss+sentinel://``) with the sentinels' ``host:port`` and the primary's name
        (``/primary-name[/db]``). When all ``max_connections`` (per cluster node) are
        busy a call waits up to ``socket_timeout`` for one rather than failing at once.
        Commands are packed by hiredis, and writes wait for ``min_replicas`` (see the
        class).
        """
        settings: dict[str, Any] = dict(
            prefix=prefix,
            owns_client=True,
            compress_over_bytes=compress_over_bytes,
            event_window=event_window,
            min_replicas=min_replicas,
            replica_timeout_ms=replica_timeout_ms,
        )
        scheme = urlsplit(url).scheme
        if scheme in SENTINEL_SCHEMES:
            return cls(sentinel_client(url, socket_timeout, max_connections), **settings)
        if scheme in CLUSTER_SCHEMES:
            if KeySpace(prefix).prefix_has_hash_tag:
                raise ValueError(
                    f"key prefix {prefix!r} holds a {{...}} hash tag: on a cluster every "
                    "session would share one slot (or, with {}, a session's keys would "
                    "not share one)"
                )
            return cls(cluster_client(url, socket_timeout, max_connections), **settings)
        # Not redis-py's blocking pool, whose checkout takes a condition and a timeout
        # (34 µs a command here, 16 µs this way): the store's gate makes a call wait for
        # a free connection instead.
        pool = redis.asyncio.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            decode_responses=True,
            encoding_errors="surrogateescape",
            retry=Retry(NoBackoff(), 0),
        )
        pool.connection_class = store_connection(pool.connection_class)
        return cls(redis.asyncio.Redis.from_pool(pool), **settings)

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
        user = self._keys.user(session.user_id)
        args: list[Arg] = [
            session.create_time_ms,
            session.session_id,
            max_sessions,
            user.session_prefix,
            *codec.meta_values(session),
        ]
        # A later turn with the same request id wins, as in begin_turn.
        requests = {t.request_id: t.index for t in turns if t.request_id}
        items = [item for turn in turns for item in turn.items]
        args += (len(turns), len(requests), len(items))
        # A turn of items stays JSON: a retried append reads its item range in Lua.
        args += (
            codec.encode_turn(t, compress_over_bytes=0 if t.items else self._compress_over)
            for t in turns
        )
        for request_id, index in requests.items():
            args += (request_id, index)
        for item in items:
            args += (item.sequence, codec.item_record(item), item.item_id)
        args += codec.state_pairs(session.state)
        reply = await self._run(
            self._create, user.session(session.session_id).all, args, acknowledged=True
        )
        if reply[0] == "LIMIT":
            raise TooManySessions(session.user_id, max_sessions)
        if reply[0] != "OK":
            raise SessionAlreadyExists(session.session_id)
        return await self._session(
            session.session_id,
            reply[1],
            reply[2],
            drain_of=session.user_id if scopes.touches_app_state(session.state) else None,
        )

    async def get(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """The live session; raises ``SessionNotFound``."""
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(self._get, keys.all, (now_ms,))
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return await self._session(session_id, reply[1], reply[2])

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
        user = self._keys.user(user_id)
        args: list[Arg] = [
            now_ms,
            user.session_prefix,
            user.state_suffix,
            agent_id or "",
            page_size,
        ]
        if after is not None:
            args += ("1", after.last_activity_ms, after.session_id)
        keys = (user.index, user.user_state, user.app_scope)
        reply = await self._run(self._list, keys, args)
        shared = reply[3] + await self._app_state_apart()
        sessions = [
            codec.decode_session(session_id, meta, state + shared, app=self._app)
            for session_id, meta, state in reply[2]
        ]
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
        fields = codec.patch_fields(patch)
        args: list[Arg] = [
            now_ms,
            session_id,
            "" if expected_etag is None else "1",
            expected_etag or "",
            "" if patch.state is None else "1",
            len(fields) // 2,
            *fields,
            len(patch.state_removals),
            *patch.state_removals,
        ]
        if patch.state is not None:
            args += codec.state_pairs(patch.state)
        reply = await self._run(
            self._update, self._keys.session(user_id, session_id).all, args, acknowledged=True
        )
        tag = reply[0]
        if tag == "OK":
            touches_app = scopes.touches_app(patch.state_delta)
            return await self._session(
                session_id, reply[1], reply[2], drain_of=user_id if touches_app else None
            )
        if tag == "ETAG":
            raise EtagMismatch(session_id, expected_etag or "", etag_of(int(reply[1])))
        raise SessionNotFound(session_id)

    async def end(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """Marks the session ENDED (idempotent); it stays readable until it expires."""
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(self._end, keys.all, (now_ms, session_id), acknowledged=True)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return await self._session(session_id, reply[1], reply[2])

    async def delete(self, *, user_id: str, session_id: str, now_ms: int) -> None:
        """Removes the session, its turns and its listing; raises ``SessionNotFound``."""
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(self._delete, keys.all, (now_ms, session_id), acknowledged=True)
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
        history_items: int = 0,
    ) -> TurnStart:
        """Records a new IN_PROGRESS turn with the user's input and returns the context.

        Checks, in the order of :meth:`SessionStore.begin_turn
        <agent_sessions.store.protocol.SessionStore.begin_turn>`, in one script.
        """
        args = (
            now_ms,
            session_id,
            request_id,
            run_id,
            now_ms + lease_ms,
            history_turns,
            codec.open_turn(now_ms, request_id, text),
            len(text.encode()),
            history_items,
        )
        keys = self._keys.session(user_id, session_id)
        try:
            reply, shared = await self._run_beside_app_state(
                self._begin_turn, keys.all, args, acknowledged=True
            )
        except _Unconfirmed as short:
            # Only a replay acknowledges a write (the turn it returns); a new turn is
            # acknowledged by its commit, whose wait covers this write too.
            if short.reply[0] == "REPLAY":
                raise
            reply, shared = short.reply, await self._app_state_apart()
        tag = reply[0]
        if tag == "OK":
            session = await self._session(session_id, reply[1], reply[2], shared=shared)
            history = codec.decode_completed(reply[3] + 1, reply[4])
            items = codec.decode_items(reply[5])
            turn = Turn(
                index=session.total_turns,
                status=TurnStatus.IN_PROGRESS,
                input=text,
                create_time_ms=now_ms,
                request_id=request_id,
            )
            return TurnStart(
                session,
                turn,
                history,
                history_items=items,
                event_sequence=codec.event_sequence(reply[6]),
                watched=reply[7] == 1,
            )
        if tag == "REPLAY":
            session = await self._session(session_id, reply[1], reply[2], shared=shared)
            return TurnStart(session, codec.decode_turn(reply[4], reply[3]), [], replayed=True)
        if tag == "ENDED":
            raise SessionEnded(session_id)
        if tag == "MAX_TURNS":
            raise MaxTurnsReached(session_id, reply[1])
        if tag == "BUSY":
            raise TurnInProgress(session_id, reply[1])
        if tag == "ATTACH":
            raise TurnInProgress(session_id, reply[1], reply[2])
        if tag == "EXTERNAL":
            raise ExternalAgentSession(session_id)
        raise SessionNotFound(session_id)

    async def renew_lease(
        self, *, user_id: str, session_id: str, index: int, run_id: str, lease_ms: int, now_ms: int
    ) -> None:
        """Extends the lease of running turn ``index`` to ``now_ms + lease_ms``.

        Raises ``RunSuperseded`` when ``run_id`` no longer owns the turn.
        """
        keys = self._keys.session(user_id, session_id)
        args = (now_ms, index, run_id, now_ms + lease_ms)
        reply = await self._run(self._renew_lease, (keys.meta,), args)
        if reply[0] != "OK":
            raise RunSuperseded(session_id, index)

    async def finish_turn(
        self,
        *,
        user_id: str,
        session_id: str,
        turn: Turn,
        run_id: str,
        outcome: TurnOutcome,
        now_ms: int,
        pending: Sequence[SessionEvent] = (),
    ) -> tuple[Turn, Session]:
        """Stores the turn's outcome, state delta and counters in one atomic step, and
        logs ``pending`` and the TURN_COMMITTED event in the same step.

        Raises ``RunSuperseded`` when ``run_id`` no longer owns the turn.
        """
        completed = outcome.status is TurnStatus.COMPLETED
        items = outcome.items if completed else ()
        finished = dataclasses.replace(
            turn,
            status=outcome.status,
            output=outcome.output if completed else "",
            error=outcome.error,
            complete_time_ms=now_ms,
            usage=outcome.usage,
            first_item_sequence=items[0].sequence if items else 0,
            last_item_sequence=items[-1].sequence if items else 0,
            items=items,  # stored apart: the turn's element holds only their range
        )
        args: list[Arg] = [
            now_ms,
            session_id,
            turn.index,
            run_id,
            "1" if completed else "",
            codec.encode_turn(finished, compress_over_bytes=self._compress_over),
            len(finished.output.encode()),
            items[0].sequence - 1 if items else "",
            _pending_json(pending),
            len(items),
            *(codec.item_record(item) for item in items),
        ]
        delta = outcome.state_delta
        if completed and delta:
            args.append(len(delta.delete))
            args += delta.delete
            args += codec.state_pairs(delta.set)
        else:
            args.append(0)
        keys = self._keys.session(user_id, session_id)
        if completed and scopes.touches_app(delta):
            reply = await self._run(self._finish_turn, keys.all, args, acknowledged=True)
            if reply[0] != "OK":
                raise RunSuperseded(session_id, turn.index)
            session = await self._session(session_id, reply[1], reply[2], drain_of=user_id)
        else:
            reply, shared = await self._run_beside_app_state(
                self._finish_turn, keys.all, args, acknowledged=True
            )
            if reply[0] != "OK":
                raise RunSuperseded(session_id, turn.index)
            session = await self._session(session_id, reply[1], reply[2], shared=shared)
        return finished, session

    async def publish(
        self,
        *,
        user_id: str,
        session_id: str,
        run_id: str,
        turn_index: int,
        events: Sequence[SessionEvent],
        now_ms: int,
    ) -> bool:
        """Logs a running turn's deltas and items if ``run_id`` still owns the turn;
        returns whether someone watches the session."""
        keys = self._keys.session(user_id, session_id)
        args: list[Arg] = [now_ms, run_id, turn_index]
        for event in events:
            args += codec.event_fields(event)
        reply = await self._run(self._publish, (keys.meta, keys.events, keys.watched), args)
        if reply[0] != "OK":
            raise RunSuperseded(session_id, turn_index)
        return bool(reply[1] == 1)

    async def watch(
        self,
        *,
        user_id: str,
        session_id: str,
        after: int | None,
        clock: Callable[[], int],
        live: bool = True,
        on_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[SessionEvent]:
        """The session's logged events after ``after``, then live ones (see
        :meth:`SessionStore.watch <agent_sessions.store.protocol.SessionStore.watch>`):
        each watcher reads the session's stream with a blocking XREAD of its own."""
        await self.get(user_id=user_id, session_id=session_id, now_ms=clock())
        keys = self._keys.session(user_id, session_id)
        key = keys.events
        last = await self._last_sequence(key) if after is None else after
        first = True
        marked = -float("inf")
        while True:
            if live and time.monotonic() - marked > self._block_ms / 1000:
                await self._mark_watched(keys.watched)
                marked = time.monotonic()
            entries = await self._read_events(key, last, block=live and not first)
            if entries and codec.event_sequence(entries[0][0]) > last + 1:
                held = codec.event_sequence(entries[0][0])
                yield SessionEvent(
                    EventKind.GAP, sequence=held - 1, time_ms=clock(), first_sequence=held
                )
            elif first and not entries and after is not None:
                newest = await self._last_sequence(key)
                if newest < after:  # the log started anew since the watcher's event
                    yield SessionEvent(EventKind.GAP, sequence=newest, time_ms=clock())
                    last = newest
            first = False
            if not entries:
                if not live:
                    return
                if not await self._exists(user_id, session_id, clock):
                    yield SessionEvent(EventKind.EXPIRED, sequence=last + 1, time_ms=clock())
                    return
                if on_idle is not None:
                    await on_idle()
                continue
            for entry_id, fields in entries:
                event = await self._event(session_id, entry_id, fields)
                last = event.sequence
                yield event
                if event.kind is EventKind.DELETED:
                    return

    async def _read_events(self, key: str, after: int, *, block: bool) -> _Entries:
        """The entries after sequence ``after``; when ``block``, waiting up to the window's
        idle check for the first."""
        try:
            if not block:
                async with self._gate:
                    return cast(
                        _Entries,
                        await self._client.xrange(key, f"(0-{after}", "+", count=_READ_BATCH),
                    )
            async with self._watch_places, self._gate:
                reply = await self._client.xread(
                    {key: f"0-{after}"}, count=_READ_BATCH, block=self._block_ms
                )
        except _UNREACHABLE as error:
            raise _unavailable(error) from error
        if not reply:
            return []
        # RESP2 (a list of [key, entries]) or RESP3 (a dict of key -> entries).
        streams = reply.items() if isinstance(reply, dict) else reply
        return cast(_Entries, [entry for _, entries in streams for entry in entries])

    async def _mark_watched(self, key: str) -> None:
        """Says that someone watches, for three blocking reads' time: runs that begin or
        publish meanwhile publish their deltas at once."""
        try:
            async with self._gate:
                await self._client.set(key, 1, px=3 * self._block_ms)
        except _UNREACHABLE as error:
            raise _unavailable(error) from error

    async def _last_sequence(self, key: str) -> int:
        try:
            async with self._gate:
                newest = await self._client.xrevrange(key, "+", "-", count=1)
        except _UNREACHABLE as error:
            raise _unavailable(error) from error
        return codec.event_sequence(str(newest[0][0])) if newest else 0

    async def _exists(self, user_id: str, session_id: str, clock: Callable[[], int]) -> bool:
        try:
            await self.get(user_id=user_id, session_id=session_id, now_ms=clock())
        except SessionNotFound:
            return False
        return True

    async def _event(self, session_id: str, entry_id: str, fields: dict[str, str]) -> SessionEvent:
        event, logged = codec.decode_event(entry_id, fields)
        if not logged:
            return event
        meta, state = codec.decode_reply_arrays(*logged)
        session = await self._session(session_id, meta, state)
        return dataclasses.replace(event, session=session)

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
        keys = self._keys.session(user_id, session_id)
        args = (
            now_ms,
            "" if start_index is None else start_index,
            limit,
            "1" if newest_first else "",
            "1" if include_archived else "",
        )
        reply = await self._run(self._list_turns, (keys.meta, keys.turns, keys.archive), args)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        pairs = reply[2]
        return TurnPage(codec.decode_turns(pairs[::2], pairs[1::2]), reply[1] or None)

    async def write_items(
        self, *, user_id: str, session_id: str, write: ItemsWrite, now_ms: int
    ) -> ItemsWritten:
        """Stores the items as one new turn, in one script; see ``SessionStore.write_items``."""
        delta = write.state_delta
        args: list[Arg] = [
            now_ms,
            session_id,
            write.request_id,
            "" if write.expected_last_sequence is None else write.expected_last_sequence,
            write.expected_etag or "",
            "" if write.replace_after is None else write.replace_after,
            codec.items_turn_head(now_ms, write.request_id, write.input, write.output),
            len(write.input.encode()) + len(write.output.encode()),
            len(write.items),
            len(delta.delete),
        ]
        for item in write.items:
            args += (item.item_id, codec.item_body(item))
        args += delta.delete
        args += codec.state_pairs(delta.set)
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(self._write_items, keys.all, args, acknowledged=True)
        tag = reply[0]
        if tag in ("OK", "REPLAY"):
            # A replay drains too: the first attempt may have failed before it did.
            touches_app = scopes.touches_app(delta)
            session = await self._session(
                session_id, reply[1], reply[2], drain_of=user_id if touches_app else None
            )
            return ItemsWritten(codec.decode_items(reply[3]), session, replayed=tag == "REPLAY")
        raise _refusal(tag, reply, session_id, write)

    async def list_items(
        self,
        *,
        user_id: str,
        session_id: str,
        after: int,
        before: int | None,
        limit: int,
        newest_first: bool,
        now_ms: int,
        include_archived: bool = False,
    ) -> ItemPage:
        """Up to ``limit`` items between two sequence numbers, in one script."""
        keys = self._keys.session(user_id, session_id)
        args = (
            now_ms,
            after,
            "" if before is None else before,
            limit,
            "1" if newest_first else "",
            "1" if include_archived else "",
        )
        keys_read = (keys.meta, keys.items, keys.archived_items)
        reply = await self._run(self._list_items, keys_read, args)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        items = codec.decode_items(reply[1])
        return ItemPage(items[:limit], len(items) > limit)

    async def pop_item(
        self, *, user_id: str, session_id: str, now_ms: int
    ) -> tuple[Item | None, Session]:
        """Removes the newest item, in one script (ZPOPMAX: never the same item twice)."""
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(self._pop_item, keys.all, (now_ms, session_id), acknowledged=True)
        if reply[0] != "OK":
            raise _refusal(reply[0], reply, session_id)
        session = await self._session(session_id, reply[1], reply[2])
        popped = codec.decode_items([reply[3]]) if reply[3] else []
        return (popped[0] if popped else None), session

    async def clear_items(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """Removes every item and turn of the history, in one script."""
        keys = self._keys.session(user_id, session_id)
        reply = await self._run(
            self._clear_items, keys.all, (now_ms, session_id), acknowledged=True
        )
        if reply[0] != "OK":
            raise _refusal(reply[0], reply, session_id)
        return await self._session(session_id, reply[1], reply[2])

    async def fold(self, *, user_id: str, session_id: str, fold: Fold, now_ms: int) -> Session:
        """Folds turns into the summary in one script; see ``SessionStore.fold``."""
        args: list[Arg] = [
            now_ms,
            session_id,
            fold.create_time_ms,
            fold.first_index,
            fold.last_index,
            fold.summary,
            fold.folded_bytes,
            "1" if fold.archive else "",
            fold.items_through,
            *fold.request_ids,
        ]
        reply = await self._run(
            self._fold, self._keys.session(user_id, session_id).all, args, acknowledged=True
        )
        if reply[0] == "CONFLICT":
            raise FoldConflict(session_id)
        if reply[0] != "OK":
            raise SessionNotFound(session_id)
        return await self._session(session_id, reply[1], reply[2])

    def namespace(self, name: str) -> RedisSessionStore:
        """The store of tenant ``name``: its own key space (see ``KeySpace.namespace``),
        the same client."""
        tenant = copy.copy(self)
        tenant._keys = self._keys.namespace(name)
        tenant._owns_client = False
        return tenant

    def app(self, name: str) -> RedisSessionStore:
        """The store of app ``name`` ("": this one): its own key space (see
        ``KeySpace.app``), the same client."""
        if not name:
            return self
        app = copy.copy(self)
        app._keys = self._keys.app(name)
        app._app = name
        app._owns_client = False
        return app

    async def _session(
        self,
        session_id: str,
        meta: _Flat,
        state: _Flat,
        *,
        drain_of: str | None = None,
        shared: _Flat | None = None,
    ) -> Session:
        """The session of a script's reply. On a cluster the reply's state lacks the app's:
        ``shared`` if it was read beside the script, else read now, after applying the
        app-state writes that the call queued in the outbox of user ``drain_of``."""
        if not self._keys.app_outbox:
            return codec.decode_session(session_id, meta, state, app=self._app)
        if drain_of is not None:
            await self._apply_app_outbox(drain_of)
        if shared is None:
            shared = await self._app_state_apart()
        return codec.decode_session(session_id, meta, state + shared, app=self._app)

    async def _run_beside_app_state(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        acknowledged: bool = False,
    ) -> tuple[Any, _Flat]:
        """The script's reply and, on a cluster, the app's state read at the same time (the
        Run path waits for one round trip, not two); nothing else elsewhere."""
        run = self._run(script, keys, args, acknowledged=acknowledged)
        if not self._keys.app_outbox:
            return await run, []
        reply, shared = await asyncio.gather(run, self._app_state_apart())
        return reply, shared

    async def _app_state_apart(self) -> _Flat:
        """On a cluster, the app's state, its keys prefixed (nothing elsewhere: the
        scripts read it)."""
        if not self._keys.app_outbox:
            return []
        try:
            async with self._gate:
                # Replies decode to str (the constructor checks the client).
                fields = cast(dict[str, str], await self._client.hgetall(self._keys.app_state))
        except _UNREACHABLE as error:
            raise _unavailable(error) from error
        return [
            value
            for key, json_value in fields.items()
            for value in (scopes.APP_PREFIX + key, json_value)
        ]

    async def _apply_app_outbox(self, user_id: str) -> None:
        """Applies the app-state writes queued in a user's outbox, oldest first.

        They are taken from the outbox atomically (LPOP), so two callers never apply the
        same write, and put back if applying fails. The commits that queued them are
        acknowledged only after this returns; a process that dies in between leaves them
        queued, and the user's next app-state write applies them first.
        """
        outbox = self._keys.user(user_id).app_scope
        while writes := await self._pop_outbox(outbox):
            try:
                await self._run(
                    self._apply_app_state, (self._keys.app_state,), writes, acknowledged=True
                )
            except StoreUnavailable:
                with contextlib.suppress(*_UNREACHABLE):
                    async with self._gate:
                        await self._client.lpush(outbox, *reversed(writes))
                raise
            if len(writes) < _OUTBOX_BATCH:
                return

    async def _pop_outbox(self, outbox: str) -> _Flat:
        try:
            async with self._gate:
                writes = cast(_Flat | None, await self._client.lpop(outbox, _OUTBOX_BATCH))
        except _UNREACHABLE as error:
            raise _unavailable(error) from error
        return writes or []

    async def check(self) -> None:
        """Raises ``StoreMisconfigured`` when no sentinel answers or none monitors the
        URL's primary; nothing else is checked (Redis down is NOT_SERVING, not wrong)."""
        if isinstance(self._client, SentinelPrimary):
            await check_sentinels(self._client)

    async def ping(self) -> None:
        """Returns when Redis (every cluster master, Sentinel's primary) answers; raises
        ``StoreUnavailable`` otherwise.

        With Sentinel it first asks the sentinels where the primary is: when they name
        another one (a failover), connections to the old primary are dropped, so writes
        stop going to a primary the sentinels gave up on, even one still alive.
        """
        try:
            async with self._gate:
                if isinstance(self._client, RedisCluster):
                    # A dead master fails its users' calls: the store is not fully serving.
                    await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
                    return
                if isinstance(self._client, SentinelPrimary):
                    await self._client.follow_primary()
                await self._client.ping()
        except _UNREACHABLE as error:
            raise _unavailable(error) from error

    async def close(self) -> None:
        """Closes the client if this store created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _run(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        acknowledged: bool = False,
    ) -> Any:
        """The script's reply. An ``acknowledged`` write waits for ``min_replicas`` in the
        same round trip, and raises ``NotReplicated`` when fewer confirm in time."""
        try:
            async with self._gate:
                if not (acknowledged and self._min_replicas):
                    return await script(keys, args)
                replicated = await self._run_waiting(script, keys, args)
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
        if replicated.replicas < self._min_replicas:
            raise _Unconfirmed(replicated, self._min_replicas, self._replica_timeout_ms)
        return replicated.reply

    async def _run_waiting(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]
    ) -> Replicated:
        command = (self._waiting_write, script.sha, len(keys), *keys, *args)
        try:
            reply = await self._client.execute_command(*command)
        except redis.exceptions.NoScriptError:
            # Not run: a Redis that restarted, or a replica promoted, has no scripts yet.
            await self._client.script_load(script.script)
            reply = await self._client.execute_command(*command)
        return cast(Replicated, reply)


class _Unconfirmed(NotReplicated):
    """Fewer replicas than asked confirmed a write in time; carries the script's reply
    (begin_turn goes on with a new turn's)."""

    def __init__(self, replicated: Replicated, wanted: int, timeout_ms: int) -> None:
        super().__init__(
            f"the write is done on the Redis primary but only {replicated.replicas} of the "
            f"{wanted} replicas asked for (--redis-min-replicas) confirmed it within "
            f"{timeout_ms} ms; retry with the same request id, which completes it "
            "without doing it twice"
        )
        self.reply = replicated.reply


def _refusal(
    tag: str, reply: list[Any], session_id: str, write: ItemsWrite | None = None
) -> SessionError:
    """The error of a write's refusal tag."""
    if tag == "ENDED":
        return SessionEnded(session_id)
    if tag == "BUSY":
        return TurnInProgress(session_id, reply[1])
    if tag == "MAX_TURNS":
        return MaxTurnsReached(session_id, reply[1])
    if tag == "SEQUENCE" and write is not None:
        return SequenceMismatch(session_id, write.expected_last_sequence or 0, reply[1])
    if tag == "ETAG" and write is not None:
        return EtagMismatch(session_id, write.expected_etag or "", etag_of(int(reply[1])))
    return SessionNotFound(session_id)


def _socket_timeout_ms(client: _Client) -> int:
    if isinstance(client, RedisCluster):
        timeout = client.connection_kwargs.get("socket_timeout")
    else:
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    return int(timeout * 1000) if timeout else 60_000


def _pending_json(pending: Sequence[SessionEvent]) -> str:
    if not pending:
        return ""
    return json.dumps([codec.event_fields(event) for event in pending], ensure_ascii=False)


def _connection_class(client: _Client) -> type[Any]:
    if isinstance(client, RedisCluster):
        return cast(type[Any], client.connection_kwargs["connection_class"])
    return client.connection_pool.connection_class


def _pool_size(client: _Client) -> int:
    if isinstance(client, RedisCluster):
        return int(client.connection_kwargs.get("max_connections") or 64)
    return int(getattr(client.connection_pool, "max_connections", 64))


def _unavailable(error: BaseException) -> StoreUnavailable:
    if isinstance(error, MasterNotFoundError):
        return StoreUnavailable(
            f"Redis Sentinel names no primary that answers now (a failover may be under "
            f"way; retry with the same request id): {error}"
        )
    return StoreUnavailable(f"Redis cannot be reached: {error}")
