"""The key space of the Redis store: every key name it uses, built here and nowhere else.

Under a prefix ``P`` (``sessions:`` by default), for user ``U`` and session ``S``:

- ``P{U}:index``: the user's sessions, a sorted set of session ids scored by last
  activity (listings, and the sessions-per-user limit);
- ``P{U}:s:S``: the session's meta hash (fields: ``codec.META_FIELDS``);
- ``P{U}:s:S:state``: its state, top-level key -> JSON value;
- ``P{U}:s:S:turns``: its history, a list whose element ``i - folded_turns - 1`` is turn
  ``i`` (folded turns leave it from the head);
- ``P{U}:s:S:requests``: request id -> turn index, for the turns in the history or archive;
- ``P{U}:s:S:archive``: turn index -> folded turn, kept for audit (only when archiving);
- ``P{U}:s:S:items``: the history's items, a sorted set of item records scored by
  sequence number;
- ``P{U}:s:S:item_ids``: client item id -> sequence number, for the items that have one;
- ``P{U}:s:S:archived_items``: the items of folded turns, kept for audit (only when
  archiving), scored by sequence number like ``items``;
- ``P{U}:s:S:events``: its event log, a stream whose entry ids are ``0-<sequence>``
  (see ``scripts/prelude.lua``); it outlives a deletion by a grace period, so that
  watchers see the session go;
- ``P{U}:s:S:watched``: present (with a short expiry) while someone watches the session,
  so that its runs publish their deltas at once;
- ``P{U}:user_state``: the user's state (the ``user:`` keys, without the prefix), shared
  by the user's sessions;
- ``P{U}:app_outbox``: on a cluster only, the app-state writes of the user's commits
  not yet applied to ``Papp_state`` (see ``store.py``);
- ``Papp_state``: the app's state (the ``app:`` keys, without the prefix), shared by all
  of its users; it holds no hash tag, and is the one key that never expires.

A tenant's key space is that of the prefix ``Pt:<tenant>:`` (:meth:`KeySpace.namespace`),
an app's that of ``Pa:<app>:`` (:meth:`KeySpace.app`; the default app's is ``P``'s own).

Every key of a user carries the ``{U}`` hash tag, so all of them hash to one cluster slot
(why per user, and what that costs, is in ``store.py``). The tag is the first ``{...}``
of a key: the prefix must hold none, and user ids hold no braces (``validation.user_id``).

Scripts get these names in KEYS. The two that find sessions through the user's index
(LIST, and CREATE counting live sessions at the limit) cannot be given those sessions'
keys in advance: they get the user's :attr:`UserKeys.session_prefix` (and LIST the
:attr:`UserKeys.state_suffix`) and join it to the ids they read. What they build starts
with the same ``P{U}``, so it stays in the user's slot.
"""

from __future__ import annotations

from dataclasses import dataclass

_INDEX = ":index"
_SESSION = ":s:"
_STATE = ":state"
_TURNS = ":turns"
_REQUESTS = ":requests"
_ARCHIVE = ":archive"
_ITEMS = ":items"
_ITEM_IDS = ":item_ids"
_ARCHIVED_ITEMS = ":archived_items"
_USER_STATE = ":user_state"
_APP_OUTBOX = ":app_outbox"
_EVENTS = ":events"
_WATCHED = ":watched"
_APP_STATE = "app_state"
_TENANT = "t:"
_APP = "a:"


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of one session, and the index of its user that lists it."""

    meta: str
    state: str
    turns: str
    requests: str
    archive: str
    index: str
    items: str
    item_ids: str
    archived_items: str
    user_state: str
    app_scope: str
    """The app's state, or on a cluster the user's outbox of app-state writes."""
    events: str
    watched: str

    @property
    def all(self) -> tuple[str, str, str, str, str, str, str, str, str, str, str, str, str]:
        """KEYS of the scripts that write a session, in their order: meta, state, turns,
        requests, index, archive, items, item_ids, archived_items, user_state,
        app_scope, events, watched."""
        return (
            self.meta,
            self.state,
            self.turns,
            self.requests,
            self.index,
            self.archive,
            self.items,
            self.item_ids,
            self.archived_items,
            self.user_state,
            self.app_scope,
            self.events,
            self.watched,
        )


@dataclass(frozen=True, slots=True)
class UserKeys:
    """The keys of one user: the index, and how the keys of its sessions are named."""

    index: str
    session_prefix: str
    """A session's meta key is this followed by its session id."""
    user_state: str
    app_scope: str
    """The app's state, or on a cluster this user's outbox of app-state writes."""
    state_suffix: str = _STATE
    """A session's state key is its meta key followed by this."""

    def session(self, session_id: str) -> SessionKeys:
        meta = self.session_prefix + session_id
        return SessionKeys(
            meta=meta,
            state=meta + self.state_suffix,
            turns=meta + _TURNS,
            requests=meta + _REQUESTS,
            archive=meta + _ARCHIVE,
            index=self.index,
            items=meta + _ITEMS,
            item_ids=meta + _ITEM_IDS,
            archived_items=meta + _ARCHIVED_ITEMS,
            user_state=self.user_state,
            app_scope=self.app_scope,
            events=meta + _EVENTS,
            watched=meta + _WATCHED,
        )


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Every key name of a store under ``prefix``; with ``app_outbox``, scripts are given
    the user's outbox of app-state writes instead of the app's state (on a cluster)."""

    prefix: str
    app_outbox: bool = False

    def user(self, user_id: str) -> UserKeys:
        tagged = f"{self.prefix}{{{user_id}}}"
        return UserKeys(
            index=tagged + _INDEX,
            session_prefix=tagged + _SESSION,
            user_state=tagged + _USER_STATE,
            app_scope=tagged + _APP_OUTBOX if self.app_outbox else self.app_state,
        )

    @property
    def app_state(self) -> str:
        return self.prefix + _APP_STATE

    def user_index(self, user_id: str) -> str:
        return self.user(user_id).index

    def session(self, user_id: str, session_id: str) -> SessionKeys:
        return self.user(user_id).session(session_id)

    def namespace(self, name: str) -> KeySpace:
        """The key space of tenant ``name``, apart from this one's and from other tenants'."""
        return KeySpace(f"{self.prefix}{_TENANT}{name}:", self.app_outbox)

    def app(self, name: str) -> KeySpace:
        """The key space of app ``name`` ("": this one), apart from every other app's."""
        if not name:
            return self
        return KeySpace(f"{self.prefix}{_APP}{name}:", self.app_outbox)

    @property
    def prefix_has_hash_tag(self) -> bool:
        """Whether keys hash by a tag in the prefix rather than by the user's: on a cluster
        every user would share one slot (or, with ``{}``, a session's keys would not)."""
        opening = self.prefix.find("{")
        return opening >= 0 and "}" in self.prefix[opening:]
