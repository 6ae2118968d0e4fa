"""The comparison row of bench/http_api.py: GetExecution served by
connect-python's ASGI application (its Connect implementation, one
hand-written forwarding method: what fronting the API with it means per RPC),
under the same uvicorn + httptools server as the HTTP API.

    NODEDROP_API_ADDR=127.0.0.1:50051 NODEDROP_TEST_PORT=8081 \
        .venv/bin/python bench/connect_python_edge.py
"""

# ruff: noqa: E402  (sys.path is fixed before the imports; see below)
from __future__ import annotations

import os
import sys

# bench/queue.py would shadow the standard library's queue module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from collections.abc import Mapping
from typing import Any

import grpc
import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint

from nodedrop.execution.v1 import execution_service_pb2 as ex
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc

_SERVICE = "nodedrop.execution.v1.ExecutionService"
_GET = MethodInfo(
    name="GetExecution",
    service_name=_SERVICE,
    input=ex.GetExecutionRequest,
    output=ex.GetExecutionResponse,
    idempotency_level=IdempotencyLevel.UNKNOWN,
)


class _Forwarder:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ex_grpc.ExecutionServiceStub(channel)

    async def get_execution(
        self, request: ex.GetExecutionRequest, ctx: RequestContext[Any, Any]
    ) -> ex.GetExecutionResponse:
        credential = ctx.request_headers().get("authorization", "")
        try:
            reply: ex.GetExecutionResponse = await self._stub.GetExecution(
                request, metadata=(("authorization", credential),), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            raise ConnectError(Code[exc.code().name], exc.details() or "") from None
        return reply


class _App(ConnectASGIApplication[_Forwarder]):
    @property
    def path(self) -> str:
        return f"/{_SERVICE}"


def _endpoints(service: _Forwarder) -> Mapping[str, Endpoint[Any, Any]]:
    return {f"/{_SERVICE}/GetExecution": Endpoint.unary(_GET, service.get_execution)}


def main() -> None:
    async def forwarder():  # type: ignore[no-untyped-def]
        # Opened in the server's loop, on start-up (lifespan).
        async with grpc.aio.insecure_channel(os.environ["NODEDROP_API_ADDR"]) as channel:
            yield _Forwarder(channel)

    app = _App(service=forwarder(), endpoints=_endpoints)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["NODEDROP_TEST_PORT"]),
        http="httptools",
        loop="uvloop",
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
