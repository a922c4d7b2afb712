"""Reads the google.rpc.Status that the server attaches to errors."""

from __future__ import annotations

from collections.abc import Sequence

from google.rpc import error_details_pb2, status_pb2

DETAILS_METADATA_KEY = "grpc-status-details-bin"


def error_info(
    trailing_metadata: Sequence[tuple[str, str | bytes]] | None,
) -> tuple[str, dict[str, str]]:
    """The ErrorInfo ``(reason, metadata)`` of an error's trailers, or ``("", {})``."""
    for key, value in trailing_metadata or ():
        if key == DETAILS_METADATA_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}
