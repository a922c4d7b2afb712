"""Reads the google.rpc.Status that the server attaches to errors, with protobuf alone.

The two messages are declared in a private descriptor pool, so the client needs no
googleapis-common-protos and does not clash with it where it is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

DETAILS_METADATA_KEY = "grpc-status-details-bin"
_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE


def _message_classes() -> tuple[Any, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="agent_sessions_client/google_rpc_status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    status = file.message_type.add(name="Status")
    status.field.add(
        name="code",
        number=1,
        label=_OPTIONAL,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    )
    status.field.add(name="message", number=2, label=_OPTIONAL, type=_STRING)
    status.field.add(
        name="details",
        number=3,
        label=_REPEATED,
        type=_MESSAGE,
        type_name=".google.protobuf.Any",
    )
    info = file.message_type.add(name="ErrorInfo")
    info.field.add(name="reason", number=1, label=_OPTIONAL, type=_STRING)
    info.field.add(name="domain", number=2, label=_OPTIONAL, type=_STRING)
    entry = info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=_OPTIONAL, type=_STRING)
    entry.field.add(name="value", number=2, label=_OPTIONAL, type=_STRING)
    info.field.add(
        name="metadata",
        number=3,
        label=_REPEATED,
        type=_MESSAGE,
        type_name=".google.rpc.ErrorInfo.MetadataEntry",
    )
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.ErrorInfo")),
    )


_Status, _ErrorInfo = _message_classes()


def error_info(
    trailing_metadata: Sequence[tuple[str, str | bytes]] | None,
) -> tuple[str, dict[str, str]]:
    """The ErrorInfo ``(reason, metadata)`` of an error's trailers, or ``("", {})``."""
    for key, value in trailing_metadata or ():
        if key == DETAILS_METADATA_KEY and isinstance(value, bytes):
            status = _Status.FromString(value)
            for detail in status.details:
                info = _ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}
