"""google.rpc rich statuses: ErrorInfo (reason, param) and RetryInfo, packed into
and read from the ``grpc-status-details-bin`` trailer. Written once, for the core
(and its test doubles) packing and for the facade and the admin site reading."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from ccapi_client.metadata import STATUS_DETAILS_HEADER

ERROR_DOMAIN = "claudecode.v1"


@dataclass(frozen=True)
class ErrorDetails:
    """What a failed call says beyond its code and message."""

    reason: str = ""
    param: str = ""
    # Whole seconds, rounded up; 0 when the core sent no RetryInfo.
    retry_after_seconds: int = 0


def to_status(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    param: str = "",
    retry_after_seconds: int = 0,
    domain: str = ERROR_DOMAIN,
) -> status_pb2.Status:
    """A google.rpc.Status with ErrorInfo (when there is a reason or param) and RetryInfo."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason or param:
        info = error_details_pb2.ErrorInfo(reason=reason, domain=domain)
        if param:
            info.metadata["param"] = param
        status.details.add().Pack(info)
    if retry_after_seconds:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=retry_after_seconds)
        )
        status.details.add().Pack(retry)
    return status


def trailing_metadata(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    param: str = "",
    retry_after_seconds: int = 0,
) -> tuple[tuple[str, bytes], ...]:
    """The trailer to pass to ``context.abort(code, message, trailing_metadata=...)``."""
    status = to_status(code, message, reason, param, retry_after_seconds)
    return ((STATUS_DETAILS_HEADER, status.SerializeToString()),)


def read_details(metadata: Iterable[tuple[str, Any]] | None) -> ErrorDetails:
    """The ErrorInfo and RetryInfo in a call's trailing metadata; blanks when absent."""
    reason = param = ""
    retry = 0
    for key, value in metadata or ():
        if key != STATUS_DETAILS_HEADER or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:  # a malformed detail must not hide the error itself
            continue
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                param = info.metadata.get("param", "")
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry_info = error_details_pb2.RetryInfo()
                detail.Unpack(retry_info)
                delay = retry_info.retry_delay
                retry = max(1, delay.seconds + (1 if delay.nanos > 0 else 0))
    return ErrorDetails(reason, param, retry)
