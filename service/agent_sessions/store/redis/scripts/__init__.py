"""The Lua scripts of the Redis store: one script, so one round trip, per store call.

Each script is a ``.lua`` file of this package (package data) whose header lists its
KEYS, ARGV and reply. It runs after the constants of the stored format, written here
from ``codec`` so that Python and Lua cannot disagree on them, and after
``prelude.lua``, the functions that the scripts share.

Every script runs all of its checks before its first write, so a refused call leaves
nothing half-written. Each reply is an array whose first element is a status tag
(``OK`` or the reason for refusing) that the store maps to a domain error. A session
reply is ``{tag, meta, state}``: ``meta`` the values of ``codec.META_FIELDS`` in that
order (HMGET) and ``state`` a flat HGETALL array.

Scripts get the keys they touch in KEYS, named by ``keys.KeySpace``, except LIST and
CREATE (at the sessions-per-user limit), which read sessions that they find in the
user's index: their headers say how they name those keys and why those stay in the
user's slot.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from agent_sessions import scopes
from agent_sessions.model import SessionStatus, TurnStatus
from agent_sessions.session_events import DEFAULT_EVENT_WINDOW, EventKind, EventWindow
from agent_sessions.store.redis import codec

_SOURCES = files(__name__)


def _lua_string(text: str) -> str:
    if "]]" in text or "\n" in text:
        raise ValueError(f"cannot embed {text!r} in a Lua long string")
    return f"[[{text}]]"


_CONSTANTS = f"""\
local META = {{{", ".join(_lua_string(f) for f in codec.META_FIELDS)}}}
local AGENT_ID = {codec.META_FIELDS.index("agent_id") + 1}
local CREATE_REQUEST_ID = {codec.META_FIELDS.index("create_request_id") + 1}
local SUMMARY = {codec.META_FIELDS.index("summary") + 1}
local ENDED = {int(SessionStatus.ENDED)}
local COMPLETED = {int(TurnStatus.COMPLETED)}
local OPEN_TURN_TAIL = {_lua_string(codec.OPEN_TURN_TAIL)}
local ABANDONED_TAIL_BEFORE_TIME = {_lua_string(codec.ABANDONED_TAIL_BEFORE_TIME)}
local ABANDONED_TAIL_AFTER_TIME = {_lua_string(codec.ABANDONED_TAIL_AFTER_TIME)}
local USER_PREFIX = {_lua_string(scopes.USER_PREFIX)}
local APP_PREFIX = {_lua_string(scopes.APP_PREFIX)}
"""


def _source(name: str) -> str:
    return _SOURCES.joinpath(f"{name}.lua").read_text(encoding="utf-8")


NAMES = (
    "create",
    "get",
    "list",
    "update",
    "end",
    "delete",
    "begin_turn",
    "renew_lease",
    "finish_turn",
    "list_turns",
    "fold",
    "write_items",
    "list_items",
    "pop_item",
    "clear_items",
    "apply_app_state",
    "publish",
)


_EVENT_KINDS = "".join(f"local {kind.name}_EVENT = {int(kind)}\n" for kind in EventKind)


@cache
def sources(*, app_outbox: bool, window: EventWindow = DEFAULT_EVENT_WINDOW) -> dict[str, str]:
    """Each script's source by name. With ``app_outbox`` (on a cluster, where the app's
    state is in another slot) scripts queue ``app:`` writes in the user's outbox instead
    of applying them, and leave the app's state out of the state they return. Event
    logs keep what ``window`` says."""
    settings = (
        f"local APP_OUTBOX = {'true' if app_outbox else 'false'}\n"
        f"local EVENTS_MAX = {window.max_events}\n"
        f"local EVENTS_MAX_AGE_MS = {window.max_age_ms}\n"
        f"local DELETED_GRACE_MS = {window.deleted_grace_ms}\n"
    )
    prelude = _CONSTANTS + _EVENT_KINDS + settings + _source("prelude")
    return {name: f"{prelude}\n{_source(name)}" for name in NAMES}
