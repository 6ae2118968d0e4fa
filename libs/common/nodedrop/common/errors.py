"""Domain errors that cross a gRPC boundary, and their one mapping to statuses.

Hierarchy::

    NodedropError                      (root; never raised itself)
    ├── InvalidArgument                INVALID_ARGUMENT, carries FieldViolations
    ├── NotFound                       NOT_FOUND
    ├── AlreadyExists                  ALREADY_EXISTS
    ├── PermissionDenied               PERMISSION_DENIED
    ├── Unauthenticated                UNAUTHENTICATED
    ├── ResourceExhausted              RESOURCE_EXHAUSTED   (retryable)
    ├── FailedPrecondition             FAILED_PRECONDITION
    ├── Aborted                        ABORTED              (retryable)
    ├── OutOfRange                     OUT_OF_RANGE
    ├── Unavailable                    UNAVAILABLE          (retryable)
    └── DeadlineExceeded               DEADLINE_EXCEEDED    (retryable)

``to_rpc_status`` is the single place where a domain error becomes a gRPC
status (the server interceptor calls it); ``from_rpc_error`` is its inverse
on the client side, so a caller handles ``NotFound`` rather than status codes.
Anything that is not a ``NodedropError`` becomes INTERNAL with a generic
message: internals never leak to callers. The message and field descriptions
of a domain error go through the same redaction as log lines
(``nodedrop.common.redaction``), so a secret quoted back (a malformed URL, a
key in a bad field) does not reach the caller either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from nodedrop.common.redaction import Redactor

__all__ = [
    "STATUS_DETAILS_KEY",
    "Aborted",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NodedropError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "RpcStatus",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "internal_status",
    "to_rpc_status",
]

# The trailing-metadata key where gRPC carries a serialized google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
INTERNAL_MESSAGE = "internal error"
_redact = Redactor().text


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One problem with one request field; ``field`` is a dotted path, e.g. ``nodes[2].type``."""

    field: str
    description: str


class NodedropError(Exception):
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    # Whether the same call may succeed if retried later unchanged.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(NodedropError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """The common case: one bad field, the message naming it."""
        return cls(f"{field}: {description}", [FieldViolation(field, description)])


class NotFound(NodedropError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(NodedropError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(NodedropError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(NodedropError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(NodedropError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


class FailedPrecondition(NodedropError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(NodedropError):
    code = grpc.StatusCode.ABORTED
    retryable = True


class OutOfRange(NodedropError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(NodedropError):
    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class DeadlineExceeded(NodedropError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


_BY_CODE: dict[grpc.StatusCode, type[NodedropError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unavailable,
        DeadlineExceeded,
    )
}


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """What a server aborts with: code, message, and trailing metadata with details."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def to_rpc_status(error: NodedropError) -> RpcStatus:
    message = _redact(error.message)
    status = status_pb2.Status(code=error.code.value[0], message=message)
    if isinstance(error, InvalidArgument) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=_redact(v.description)
                )
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    return RpcStatus(
        code=error.code,
        details=message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


def internal_status() -> RpcStatus:
    return RpcStatus(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, ())


def from_rpc_error(
    code: grpc.StatusCode,
    details: str | None,
    trailing_metadata: Sequence[tuple[str, str | bytes]] | None,
) -> NodedropError | None:
    """The domain error a failed call stands for, or None for codes with no domain meaning."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return None
    message = details or code.name.lower()
    if cls is InvalidArgument:
        return InvalidArgument(message, _field_violations(trailing_metadata or ()))
    return cls(message)


def _field_violations(
    trailing_metadata: Sequence[tuple[str, str | bytes]],
) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    for key, value in trailing_metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        if status.code != code_pb2.INVALID_ARGUMENT:
            continue
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
    return violations
