"""The client's errors: the project's one hierarchy (``nodedrop.common.errors``).

A failed call raises the ``NodedropError`` its status stands for, the same
types the services raise, so a caller catches ``NotFound`` or
``InvalidArgument`` (whose ``violations`` hold one ``FieldViolation`` per bad
field) rather than reading status codes. A status with no domain meaning
(INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, DATA_LOSS) is ``ServerError``,
which keeps the status it came with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from nodedrop.common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NodedropError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)

__all__ = [
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
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "error_of",
    "status_name",
]


class ServerError(NodedropError):
    """A status the client cannot act on; ``status`` says which."""

    def __init__(self, message: str, status: grpc.StatusCode) -> None:
        super().__init__(message)
        self.status = status


def status_name(error: NodedropError) -> str:
    """The gRPC status name of an error, e.g. ``NOT_FOUND``."""
    code = error.status if isinstance(error, ServerError) else error.code
    return str(code.name)


def error_of(exc: grpc.aio.AioRpcError) -> NodedropError:
    """The domain error a failed call stands for."""
    raw: Sequence[tuple[str, str | bytes]] = [
        (str(k), v) for k, v in (exc.trailing_metadata() or ())
    ]
    error = from_rpc_error(exc.code(), exc.details(), raw)
    if error is not None:
        return error
    code: Any = exc.code()
    return ServerError(exc.details() or code.name.lower(), code)
