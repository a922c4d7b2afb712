import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_ACTIVE: _ClassVar[SessionStatus]
    SESSION_STATUS_ENDED: _ClassVar[SessionStatus]

class TurnStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TURN_STATUS_UNSPECIFIED: _ClassVar[TurnStatus]
    TURN_STATUS_IN_PROGRESS: _ClassVar[TurnStatus]
    TURN_STATUS_COMPLETED: _ClassVar[TurnStatus]
    TURN_STATUS_FAILED: _ClassVar[TurnStatus]
    TURN_STATUS_CANCELLED: _ClassVar[TurnStatus]

class ItemType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_TYPE_UNSPECIFIED: _ClassVar[ItemType]
    ITEM_TYPE_MESSAGE: _ClassVar[ItemType]
    ITEM_TYPE_TOOL_CALL: _ClassVar[ItemType]
    ITEM_TYPE_TOOL_RESULT: _ClassVar[ItemType]
    ITEM_TYPE_REASONING: _ClassVar[ItemType]
    ITEM_TYPE_OTHER: _ClassVar[ItemType]
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_ACTIVE: SessionStatus
SESSION_STATUS_ENDED: SessionStatus
TURN_STATUS_UNSPECIFIED: TurnStatus
TURN_STATUS_IN_PROGRESS: TurnStatus
TURN_STATUS_COMPLETED: TurnStatus
TURN_STATUS_FAILED: TurnStatus
TURN_STATUS_CANCELLED: TurnStatus
ITEM_TYPE_UNSPECIFIED: ItemType
ITEM_TYPE_MESSAGE: ItemType
ITEM_TYPE_TOOL_CALL: ItemType
ITEM_TYPE_TOOL_RESULT: ItemType
ITEM_TYPE_REASONING: ItemType
ITEM_TYPE_OTHER: ItemType

class Session(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "status", "create_time", "update_time", "expire_time", "ttl", "idle_timeout", "max_turns", "turn_count", "state_json", "labels", "summary", "etag", "last_activity_time", "total_turns", "folded_turns", "history_bytes", "external_agent", "last_item_sequence", "app")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TURNS_FIELD_NUMBER: _ClassVar[int]
    FOLDED_TURNS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_AGENT_FIELD_NUMBER: _ClassVar[int]
    LAST_ITEM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    status: SessionStatus
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    ttl: _duration_pb2.Duration
    idle_timeout: _duration_pb2.Duration
    max_turns: int
    turn_count: int
    state_json: str
    labels: _containers.ScalarMap[str, str]
    summary: str
    etag: str
    last_activity_time: _timestamp_pb2.Timestamp
    total_turns: int
    folded_turns: int
    history_bytes: int
    external_agent: bool
    last_item_sequence: int
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_turns: _Optional[int] = ..., turn_count: _Optional[int] = ..., state_json: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., summary: _Optional[str] = ..., etag: _Optional[str] = ..., last_activity_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_turns: _Optional[int] = ..., folded_turns: _Optional[int] = ..., history_bytes: _Optional[int] = ..., external_agent: _Optional[bool] = ..., last_item_sequence: _Optional[int] = ..., app: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("index", "status", "input", "output", "create_time", "complete_time", "request_id", "error", "usage", "items")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: TurnStatus
    input: str
    output: str
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    request_id: str
    error: str
    usage: TokenUsage
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[TurnStatus, str]] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., error: _Optional[str] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class SessionSnapshot(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "status", "ttl", "idle_timeout", "max_turns", "state_json", "labels", "summary", "folded_turns", "turn_count", "turns", "external_agent", "items", "last_item_sequence", "app")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FOLDED_TURNS_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_AGENT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LAST_ITEM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    status: SessionStatus
    ttl: _duration_pb2.Duration
    idle_timeout: _duration_pb2.Duration
    max_turns: int
    state_json: str
    labels: _containers.ScalarMap[str, str]
    summary: str
    folded_turns: int
    turn_count: int
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    external_agent: bool
    items: _containers.RepeatedCompositeFieldContainer[Item]
    last_item_sequence: int
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_turns: _Optional[int] = ..., state_json: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., summary: _Optional[str] = ..., folded_turns: _Optional[int] = ..., turn_count: _Optional[int] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., external_agent: _Optional[bool] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., last_item_sequence: _Optional[int] = ..., app: _Optional[str] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("user_id", "agent_id", "session_id", "ttl", "idle_timeout", "max_turns", "state_json", "labels", "request_id", "external_agent", "app")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_AGENT_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    agent_id: str
    session_id: str
    ttl: _duration_pb2.Duration
    idle_timeout: _duration_pb2.Duration
    max_turns: int
    state_json: str
    labels: _containers.ScalarMap[str, str]
    request_id: str
    external_agent: bool
    app: str
    def __init__(self, user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., session_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_turns: _Optional[int] = ..., state_json: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ..., external_agent: _Optional[bool] = ..., app: _Optional[str] = ...) -> None: ...

class ImportSessionRequest(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: SessionSnapshot
    def __init__(self, snapshot: _Optional[_Union[SessionSnapshot, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("user_id", "agent_id", "page_size", "page_token", "app")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    agent_id: str
    page_size: int
    page_token: str
    app: str
    def __init__(self, user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSessionRequest(_message.Message):
    __slots__ = ("session", "update_mask", "state_removals")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    STATE_REMOVALS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    update_mask: _field_mask_pb2.FieldMask
    state_removals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., state_removals: _Optional[_Iterable[str]] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "input", "request_id", "app", "detach")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    input: str
    request_id: str
    app: str
    detach: bool
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., input: _Optional[str] = ..., request_id: _Optional[str] = ..., app: _Optional[str] = ..., detach: _Optional[bool] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("started", "delta", "completed", "item", "sequence")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    started: RunStarted
    delta: RunDelta
    completed: RunCompleted
    item: Item
    sequence: int
    def __init__(self, started: _Optional[_Union[RunStarted, _Mapping]] = ..., delta: _Optional[_Union[RunDelta, _Mapping]] = ..., completed: _Optional[_Union[RunCompleted, _Mapping]] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("turn_index", "replayed", "run_id")
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    turn_index: int
    replayed: bool
    run_id: str
    def __init__(self, turn_index: _Optional[int] = ..., replayed: _Optional[bool] = ..., run_id: _Optional[str] = ...) -> None: ...

class RunDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class RunCompleted(_message.Message):
    __slots__ = ("turn", "session")
    TURN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    turn: Turn
    session: Session
    def __init__(self, turn: _Optional[_Union[Turn, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListTurnsRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "page_size", "page_token", "order_by", "include_archived", "include_items", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    page_size: int
    page_token: str
    order_by: str
    include_archived: bool
    include_items: bool
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., order_by: _Optional[str] = ..., include_archived: _Optional[bool] = ..., include_items: _Optional[bool] = ..., app: _Optional[str] = ...) -> None: ...

class ListTurnsResponse(_message.Message):
    __slots__ = ("turns", "next_page_token")
    TURNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    next_page_token: str
    def __init__(self, turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CompressSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "keep_last", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    keep_last: int
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., keep_last: _Optional[int] = ..., app: _Optional[str] = ...) -> None: ...

class CompressSessionResponse(_message.Message):
    __slots__ = ("session", "folded_turns", "summarizer")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    FOLDED_TURNS_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZER_FIELD_NUMBER: _ClassVar[int]
    session: Session
    folded_turns: int
    summarizer: str
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., folded_turns: _Optional[int] = ..., summarizer: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("sequence", "turn_index", "type", "type_name", "role", "name", "call_id", "payload_json", "create_time", "item_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    turn_index: int
    type: ItemType
    type_name: str
    role: str
    name: str
    call_id: str
    payload_json: str
    create_time: _timestamp_pb2.Timestamp
    item_id: str
    def __init__(self, sequence: _Optional[int] = ..., turn_index: _Optional[int] = ..., type: _Optional[_Union[ItemType, str]] = ..., type_name: _Optional[str] = ..., role: _Optional[str] = ..., name: _Optional[str] = ..., call_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., item_id: _Optional[str] = ...) -> None: ...

class AppendItemsRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "items", "state_delta_json", "state_removals", "expected_last_sequence", "etag", "request_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    STATE_DELTA_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_REMOVALS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    state_delta_json: str
    state_removals: _containers.RepeatedScalarFieldContainer[str]
    expected_last_sequence: int
    etag: str
    request_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., state_delta_json: _Optional[str] = ..., state_removals: _Optional[_Iterable[str]] = ..., expected_last_sequence: _Optional[int] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class AppendItemsResponse(_message.Message):
    __slots__ = ("items", "session")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    session: Session
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "page_size", "page_token", "order_by", "after_sequence", "include_archived", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    page_size: int
    page_token: str
    order_by: str
    after_sequence: int
    include_archived: bool
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., order_by: _Optional[str] = ..., after_sequence: _Optional[int] = ..., include_archived: _Optional[bool] = ..., app: _Optional[str] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PopItemRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class PopItemResponse(_message.Message):
    __slots__ = ("item", "session")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    item: Item
    session: Session
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ClearItemsRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class ClearItemsResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ReplaceItemsRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "after_sequence", "items", "expected_last_sequence", "request_id", "app")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    after_sequence: int
    items: _containers.RepeatedCompositeFieldContainer[Item]
    expected_last_sequence: int
    request_id: str
    app: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., expected_last_sequence: _Optional[int] = ..., request_id: _Optional[str] = ..., app: _Optional[str] = ...) -> None: ...

class ReplaceItemsResponse(_message.Message):
    __slots__ = ("items", "session")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    session: Session
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class WatchSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app", "after_sequence")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    after_sequence: int
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("sequence", "event_time", "run_id", "turn_index", "run_started", "delta", "item", "turn_committed", "session_updated", "compressed", "ended", "deleted", "expired", "gap")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    RUN_STARTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    TURN_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    SESSION_UPDATED_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    event_time: _timestamp_pb2.Timestamp
    run_id: str
    turn_index: int
    run_started: RunStarted
    delta: RunDelta
    item: Item
    turn_committed: TurnCommitted
    session_updated: Session
    compressed: Session
    ended: Session
    deleted: SessionDeleted
    expired: SessionExpired
    gap: EventGap
    def __init__(self, sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_id: _Optional[str] = ..., turn_index: _Optional[int] = ..., run_started: _Optional[_Union[RunStarted, _Mapping]] = ..., delta: _Optional[_Union[RunDelta, _Mapping]] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., turn_committed: _Optional[_Union[TurnCommitted, _Mapping]] = ..., session_updated: _Optional[_Union[Session, _Mapping]] = ..., compressed: _Optional[_Union[Session, _Mapping]] = ..., ended: _Optional[_Union[Session, _Mapping]] = ..., deleted: _Optional[_Union[SessionDeleted, _Mapping]] = ..., expired: _Optional[_Union[SessionExpired, _Mapping]] = ..., gap: _Optional[_Union[EventGap, _Mapping]] = ...) -> None: ...

class TurnCommitted(_message.Message):
    __slots__ = ("turn", "session")
    TURN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    turn: Turn
    session: Session
    def __init__(self, turn: _Optional[_Union[Turn, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class SessionDeleted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionExpired(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventGap(_message.Message):
    __slots__ = ("first_available_sequence",)
    FIRST_AVAILABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    first_available_sequence: int
    def __init__(self, first_available_sequence: _Optional[int] = ...) -> None: ...

class ResumeRunRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "app", "run_id", "request_id", "after_sequence")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    app: str
    run_id: str
    request_id: str
    after_sequence: int
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., app: _Optional[str] = ..., run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...
