from agentsessions.sessions.v1 import sessions_pb2 as _sessions_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "turn_index", "state_json", "summary", "history", "input")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    turn_index: int
    state_json: str
    summary: str
    history: _containers.RepeatedCompositeFieldContainer[Exchange]
    input: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., turn_index: _Optional[int] = ..., state_json: _Optional[str] = ..., summary: _Optional[str] = ..., history: _Optional[_Iterable[_Union[Exchange, _Mapping]]] = ..., input: _Optional[str] = ...) -> None: ...

class Exchange(_message.Message):
    __slots__ = ("index", "input", "output", "items")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    index: int
    input: str
    output: str
    items: _containers.RepeatedCompositeFieldContainer[_sessions_pb2.Item]
    def __init__(self, index: _Optional[int] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., items: _Optional[_Iterable[_Union[_sessions_pb2.Item, _Mapping]]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "state_update", "usage", "item")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STATE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    text: TextDelta
    state_update: StateUpdate
    usage: Usage
    item: _sessions_pb2.Item
    def __init__(self, text: _Optional[_Union[TextDelta, _Mapping]] = ..., state_update: _Optional[_Union[StateUpdate, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., item: _Optional[_Union[_sessions_pb2.Item, _Mapping]] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class StateUpdate(_message.Message):
    __slots__ = ("set_json", "delete")
    SET_JSON_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    set_json: str
    delete: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, set_json: _Optional[str] = ..., delete: _Optional[_Iterable[str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class SummarizeRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "summary", "turns", "max_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    summary: str
    turns: _containers.RepeatedCompositeFieldContainer[Exchange]
    max_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., summary: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Exchange, _Mapping]]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class SummarizeResponse(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: str
    def __init__(self, summary: _Optional[str] = ...) -> None: ...
