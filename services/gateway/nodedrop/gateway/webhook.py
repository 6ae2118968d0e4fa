"""Webhook routes of the gateway: it reads the call (the body within its
size limit) and hands it to the API's internal WebhookService with the
service credential; the API's answer is sent back as it is.

    /webhook/<tenant id>/<path>           an active workflow's webhook
    /webhook-test/<workflow id>/<path>    the workflow's latest version, not
                                          activated; X-Nodedrop-Api-Key: <key>
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

import grpc

from nodedrop.common.logging import get_logger
from nodedrop.gateway.http import BodyTooLarge, Request, Response, error_response
from nodedrop.webhook.v1 import webhook_service_pb2 as pb
from nodedrop.webhook.v1 import webhook_service_pb2_grpc

__all__ = ["PRODUCTION_PREFIX", "TEST_PREFIX", "WebhookForwarder"]

log = get_logger("nodedrop.gateway.webhook")

PRODUCTION_PREFIX = "/webhook/"
TEST_PREFIX = "/webhook-test/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
TEST_KEY_HEADER = "x-nodedrop-api-key"
# The API waits at most 300 s for a when_finished execution.
_DEADLINE_S = 310.0


class WebhookForwarder:
    def __init__(
        self,
        api: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        *,
        max_body_bytes: int,
    ) -> None:
        self._stub = webhook_service_pb2_grpc.WebhookServiceStub(api)
        self._metadata = tuple(metadata)
        self._max_body_bytes = max_body_bytes

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
            answer: pb.HandleWebhookResponse = await self._stub.HandleWebhook(
                call, timeout=_DEADLINE_S, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            return _upstream_failure(exc)
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
