"""Items between the domain and the contract's protobuf: for the API, and for the agents
that run as services of their own (their items travel in the same message)."""

from __future__ import annotations

from typing import cast

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import timestamp_pb2

from agent_sessions.model import Item, ItemType

# An unknown type number (from a newer contract) is kept as OTHER; 0 is refused.
_ITEM_TYPES = {int(t): t for t in ItemType}


def item_of(message: pb.Item) -> Item:
    """A written item; its output-only fields are the store's to set."""
    if message.type == pb.ITEM_TYPE_UNSPECIFIED:
        item_type = None
    else:
        item_type = _ITEM_TYPES.get(message.type, ItemType.OTHER)
    return Item(
        type=item_type,  # type: ignore[arg-type]  # refused by validation.items, named
        payload_json=message.payload_json,
        type_name=message.type_name,
        role=message.role,
        name=message.name,
        call_id=message.call_id,
        item_id=message.item_id,
    )


def item_message(item: Item) -> pb.Item:
    message = pb.Item(
        sequence=item.sequence,
        turn_index=item.turn_index,
        type=cast(pb.ItemType, item.type.value),
        type_name=item.type_name,
        role=item.role,
        name=item.name,
        call_id=item.call_id,
        payload_json=item.payload_json,
        item_id=item.item_id,
    )
    if item.create_time_ms:  # an item streamed by Run is dated when its turn is stored
        message.create_time.CopyFrom(_timestamp(item.create_time_ms))
    return message


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp
