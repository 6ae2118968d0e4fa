from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from nodedrop.common import errors
from nodedrop.common.errors import (
    STATUS_DETAILS_KEY,
    FieldViolation,
    InvalidArgument,
    NodedropError,
    from_rpc_error,
    internal_status,
    to_rpc_status,
)

EXPECTED: dict[type[NodedropError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def test_every_domain_error_is_covered() -> None:
    declared = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, NodedropError) and obj is not NodedropError
    }
    assert declared == set(EXPECTED)


@pytest.mark.parametrize(("cls", "code"), EXPECTED.items())
def test_each_error_maps_to_its_code_and_back(
    cls: type[NodedropError], code: grpc.StatusCode
) -> None:
    status = to_rpc_status(cls("what went wrong"))
    assert status.code is code
    assert status.details == "what went wrong"
    decoded = from_rpc_error(status.code, status.details, status.trailing_metadata)
    assert type(decoded) is cls
    assert decoded is not None and decoded.message == "what went wrong"


def test_invalid_argument_carries_bad_request_details() -> None:
    error = InvalidArgument(
        "2 problems",
        [FieldViolation("nodes[0].type", "unknown node type"), FieldViolation("name", "empty")],
    )
    status = to_rpc_status(error)
    ((key, blob),) = status.trailing_metadata
    assert key == STATUS_DETAILS_KEY
    assert isinstance(blob, bytes)
    rich = status_pb2.Status.FromString(blob)
    assert rich.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("nodes[0].type", "unknown node type"),
        ("name", "empty"),
    ]
    decoded = from_rpc_error(status.code, status.details, status.trailing_metadata)
    assert isinstance(decoded, InvalidArgument)
    assert decoded.violations == error.violations


def test_unexpected_errors_say_nothing_about_internals() -> None:
    status = internal_status()
    assert status.code is grpc.StatusCode.INTERNAL
    assert status.details == "internal error"
    assert status.trailing_metadata == ()
    assert from_rpc_error(grpc.StatusCode.INTERNAL, "x", ()) is None
    assert from_rpc_error(grpc.StatusCode.UNIMPLEMENTED, "x", ()) is None


def test_retryable_flags() -> None:
    retryable: set[type[NodedropError]] = {cls for cls in EXPECTED if cls.retryable}
    assert retryable == {
        errors.ResourceExhausted,
        errors.Aborted,
        errors.Unavailable,
        errors.DeadlineExceeded,
    }
