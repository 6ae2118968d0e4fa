"""The one gRPC -> HTTP status table: every code has the Connect protocol's
status, and the gateway's HTTP/JSON API answers with it."""

from __future__ import annotations

import grpc

from nodedrop.common.errors import OutOfRange
from nodedrop.common.http_status import HTTP_STATUS, http_status
from nodedrop.gateway.httpapi.errors import CONNECT_CODES, ApiError


def test_every_code_has_connect_s_http_status_and_word() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert http_status(grpc.StatusCode.OK) == 500
    # Codes the webhooks once answered 500 to, from a table of their own.
    assert http_status(OutOfRange.code) == 400
    assert http_status(grpc.StatusCode.UNIMPLEMENTED) == 501
    assert http_status(grpc.StatusCode.CANCELLED) == 499
    for code, status in HTTP_STATUS.items():
        assert ApiError(code, "m").http_status == status
    assert CONNECT_CODES[grpc.StatusCode.CANCELLED] == "canceled"
    assert CONNECT_CODES[grpc.StatusCode.FAILED_PRECONDITION] == "failed_precondition"
