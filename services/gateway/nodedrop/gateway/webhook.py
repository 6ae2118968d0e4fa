"""Webhook routes of the gateway: it reads the call (the body within its
size limit) and hands it to the API's internal WebhookService with the
service credential; the API's answer is sent back as it is. All calls share
one gRPC stream to the API (``CallStream``).

    /webhook/<tenant id>/<path>           an active workflow's webhook
    /webhook-test/<workflow id>/<path>    the workflow's latest version, not
                                          activated; X-Nodedrop-Api-Key: <key>
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Sequence
from http import HTTPStatus
from typing import Any

import grpc

from nodedrop.common.logging import get_logger
from nodedrop.gateway.http import BodyTooLarge, Request, Response, error_response
from nodedrop.webhook.v1 import webhook_service_pb2 as pb
from nodedrop.webhook.v1 import webhook_service_pb2_grpc

__all__ = ["PRODUCTION_PREFIX", "TEST_PREFIX", "CallStream", "WebhookForwarder"]

log = get_logger("nodedrop.gateway.webhook")

PRODUCTION_PREFIX = "/webhook/"
TEST_PREFIX = "/webhook-test/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
TEST_KEY_HEADER = "x-nodedrop-api-key"
# The API waits at most 300 s for a when_finished execution.
_DEADLINE_S = 310.0
# A call's bytes in a message beside its request's: its id and the field tags.
_FRAMING_BYTES = 32


class _Session:
    """One open HandleWebhooks stream: the calls waiting to be written and
    the callers waiting for their answers. When the stream fails, every
    caller waiting on it gets the failure; the next call opens a new one."""

    def __init__(
        self,
        stub: webhook_service_pb2_grpc.WebhookServiceStub,
        metadata: Any,
        max_message_bytes: int,
    ) -> None:
        # Each call with its size: a message stays within the API's limit.
        self.pending: deque[tuple[pb.WebhookCall, int]] = deque()
        self.max_message_bytes = max_message_bytes
        self.waiting: dict[int, asyncio.Future[pb.HandleWebhookResponse]] = {}
        self.wake = asyncio.Event()
        self.closed = False
        # No deadline: the stream lives as long as the gateway; each call has
        # its own (CallStream.handle), and keepalive pings find a dead API.
        self.call = stub.HandleWebhooks(self._outgoing(), metadata=metadata)
        self.reader = asyncio.create_task(self._read())

    async def _outgoing(self) -> AsyncIterator[pb.HandleWebhooksRequest]:
        # gRPC pulls the next message once the last one is written: the calls
        # that arrived meanwhile leave together.
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                calls: list[pb.WebhookCall] = []
                size = 0
                while self.pending and size + self.pending[0][1] <= self.max_message_bytes:
                    call, call_size = self.pending.popleft()
                    calls.append(call)
                    size += call_size
                yield pb.HandleWebhooksRequest(calls=calls)

    async def _read(self) -> None:
        failure: BaseException = grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            "the API ended the webhook stream",
        )
        try:
            async for batch in self.call:
                for answer in batch.answers:
                    future = self.waiting.pop(answer.id, None)
                    if future is not None and not future.done():
                        future.set_result(answer.response)
        except grpc.aio.AioRpcError as exc:
            failure = exc
        finally:
            self.closed = True
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self.waiting.clear()

    def close(self) -> None:
        self.closed = True
        self.call.cancel()
        self.reader.cancel()


class CallStream:
    """The gateway's calls to WebhookService.HandleWebhooks, each answered on
    its own over one shared stream."""

    def __init__(
        self,
        api: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        *,
        max_message_bytes: int,
    ) -> None:
        self._stub = webhook_service_pb2_grpc.WebhookServiceStub(api)
        self._metadata = tuple(metadata)
        self._max_message_bytes = max_message_bytes
        self._ids = itertools.count(1)
        self._session: _Session | None = None

    async def handle(
        self, request: pb.HandleWebhookRequest, timeout_s: float
    ) -> pb.HandleWebhookResponse:
        """The API's answer; raises the stream's AioRpcError when it fails
        (RESOURCE_EXHAUSTED, without sending it, for a call larger than a
        message may be), and TimeoutError after ``timeout_s``."""
        size = request.ByteSize() + _FRAMING_BYTES
        if size > self._max_message_bytes:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                f"the request is larger than the API accepts ({self._max_message_bytes} bytes)",
            )
        session = self._session
        if session is None or session.closed:
            session = self._session = _Session(self._stub, self._metadata, self._max_message_bytes)
        call_id = next(self._ids)
        future: asyncio.Future[pb.HandleWebhookResponse] = (
            asyncio.get_running_loop().create_future()
        )
        session.waiting[call_id] = future
        session.pending.append((pb.WebhookCall(id=call_id, request=request), size))
        session.wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            session.waiting.pop(call_id, None)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class WebhookForwarder:
    def __init__(
        self,
        api: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        *,
        max_body_bytes: int,
        max_message_bytes: int,
    ) -> None:
        self._calls = CallStream(api, metadata, max_message_bytes=max_message_bytes)
        self._max_body_bytes = max_body_bytes

    def close(self) -> None:
        self._calls.close()

    async def production(self, request: Request) -> Response:
        return await self._forward(request, PRODUCTION_PREFIX, test=False)

    async def test(self, request: Request) -> Response:
        return await self._forward(request, TEST_PREFIX, test=True)

    async def _forward(self, request: Request, prefix: str, *, test: bool) -> Response:
        owner, _, path = request.path.removeprefix(prefix).partition("/")
        if not owner or not path.strip("/"):
            return error_response(HTTPStatus.NOT_FOUND, f"webhook URLs are {prefix}<id>/<path>")
        api_key = ""
        if test:
            api_key = request.headers.get(TEST_KEY_HEADER, "").strip()
            if not api_key:
                return error_response(
                    HTTPStatus.UNAUTHORIZED, f"a test webhook needs {TEST_KEY_HEADER}: <api key>"
                )
        try:
            body = await request.body(self._max_body_bytes)
        except BodyTooLarge as exc:
            return error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
        call = pb.HandleWebhookRequest(
            tenant_id="" if test else owner,
            workflow_id=owner if test else "",
            path=path,
            method=request.method,
            headers=[pb.Header(name=k, value=v) for k, v in request.header_list],
            query=request.raw_query.decode("latin-1"),
            body=body,
            test=test,
            api_key=api_key,
        )
        try:
            answer = await self._calls.handle(call, _DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            return _upstream_failure(exc)
        except TimeoutError:
            return error_response(HTTPStatus.GATEWAY_TIMEOUT, "the API did not answer in time")
        content_type = ""
        headers: list[tuple[str, str]] = []
        for h in answer.headers:
            if h.name == "content-type":
                content_type = h.value
            else:
                headers.append((h.name, h.value))
        return Response(answer.status, answer.body, content_type, headers)


def _upstream_failure(exc: grpc.aio.AioRpcError) -> Response:
    code = exc.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # The API refused the gateway's service credential: a deployment fault.
        log.error("the API refused the gateway's service credential", code=code.name)
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "webhooks are unavailable")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return error_response(HTTPStatus.GATEWAY_TIMEOUT, "the API did not answer in time")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, exc.details() or "too large")
    log.warning("webhook call failed", code=code.name)
    return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the API is unavailable")
