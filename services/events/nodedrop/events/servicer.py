"""EventService over gRPC: requests in, batches of pre-serialized event frames out.

Handlers are async generators (the OpenTelemetry interceptor breaks
`context.write`), and they yield responses joined from the frames the hub
serialized once, through an identity serializer registered in `add_to_server`.
Each response carries everything that was ready when the stream could send
again, so a busy subscriber costs one message per wake-up, not per event.

An open stream re-checks its caller's credential every ``recheck_s`` (half
the authenticator's cache TTL): a revoked key's or an expired ticket's
stream ends with UNAUTHENTICATED (docs/events.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from nodedrop.common.auth import (
    DEFAULT_AUTH_CACHE_TTL_S,
    SCOPE_READ,
    Authenticator,
    Principal,
    current_credential,
    current_principal,
    parse_bearer,
)
from nodedrop.common.credential_watch import CredentialWatch
from nodedrop.common.errors import (
    FieldViolation,
    InvalidArgument,
    NodedropError,
    PermissionDenied,
    Unauthenticated,
    to_rpc_status,
)
from nodedrop.event.v1 import event_pb2, event_service_pb2
from nodedrop.events.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, pack
from nodedrop.events.subscription import Subscriptions, TenantFilter
from nodedrop.store.validation import ID_PATTERN, is_valid_id

SERVICE_NAME = "nodedrop.event.v1.EventService"


class EventServicer:
    def __init__(
        self,
        subscriptions: Subscriptions,
        authenticator: Authenticator,
        *,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        recheck_s: float = DEFAULT_AUTH_CACHE_TTL_S / 2,
    ) -> None:
        self._subscriptions = subscriptions
        self._authenticator = authenticator
        self._recheck_s = recheck_s
        self._max_events = max_batch_events
        self._max_bytes = max_batch_bytes

    async def _caller(self, context: grpc.aio.ServicerContext) -> tuple[Principal, str]:
        # The shared server's auth interceptor normally sets the principal; a
        # server built without it still authenticates every stream here.
        try:
            principal = current_principal()
            credential = current_credential() or ""
        except Unauthenticated:
            metadata = dict(context.invocation_metadata() or ())
            header = metadata.get("authorization")
            if not isinstance(header, str):
                raise Unauthenticated("missing authorization metadata 'Bearer <api key>'") from None
            credential = parse_bearer(header)
            principal = await self._authenticator.authenticate(credential)
        if not principal.has_scope(SCOPE_READ):
            raise PermissionDenied("streaming events needs the 'read' scope")
        return principal, credential

    def _watch(self, principal: Principal, credential: str) -> CredentialWatch:
        async def check() -> None:
            current = await self._authenticator.authenticate(credential)
            if current.tenant_id != principal.tenant_id or not current.has_scope(SCOPE_READ):
                raise PermissionDenied("the credential no longer reads this tenant")

        return CredentialWatch(check, self._recheck_s)

    async def StreamExecutionEvents(
        self,
        request: event_service_pb2.StreamExecutionEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        try:
            execution_id = request.execution_id
            # The rule every service applies to an execution id: a malformed one
            # is the caller's mistake, not an outage to retry.
            if not is_valid_id(execution_id):
                raise InvalidArgument(
                    f"execution_id: must match {ID_PATTERN}",
                    [FieldViolation("execution_id", f"must match {ID_PATTERN}")],
                )
            principal, credential = await self._caller(context)
            async with self._watch(principal, credential):
                async for batch in self._subscriptions.execution(
                    principal, credential, execution_id, request.after_sequence
                ):
                    for response in pack(
                        batch, max_events=self._max_events, max_bytes=self._max_bytes
                    ):
                        yield response
        except NodedropError as exc:
            status = to_rpc_status(exc)
            context.set_trailing_metadata(status.trailing_metadata)
            await context.abort(status.code, status.details)

    async def StreamEvents(
        self, request: event_service_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        try:
            known = set(event_pb2.EventType.values())
            bad = [
                FieldViolation(f"event_types[{i}]", f"unknown event type {t}")
                for i, t in enumerate(request.event_types)
                if t not in known or t == event_pb2.EVENT_TYPE_UNSPECIFIED
            ]
            if bad:
                raise InvalidArgument("invalid event_types", bad)
            principal, credential = await self._caller(context)
            matches = TenantFilter(request.workflow_id, frozenset(request.event_types))
            async with self._watch(principal, credential):
                async for batch in self._subscriptions.tenant(principal, matches):
                    for response in pack(
                        batch, max_events=self._max_events, max_bytes=self._max_bytes
                    ):
                        yield response
        except NodedropError as exc:
            status = to_rpc_status(exc)
            context.set_trailing_metadata(status.trailing_metadata)
            await context.abort(status.code, status.details)


def _identity(frame: bytes) -> bytes:
    return frame


def add_to_server(servicer: EventServicer, server: grpc.aio.Server) -> None:
    handlers = {
        "StreamExecutionEvents": grpc.unary_stream_rpc_method_handler(
            servicer.StreamExecutionEvents,
            request_deserializer=event_service_pb2.StreamExecutionEventsRequest.FromString,
            response_serializer=_identity,
        ),
        "StreamEvents": grpc.unary_stream_rpc_method_handler(
            servicer.StreamEvents,
            request_deserializer=event_service_pb2.StreamEventsRequest.FromString,
            response_serializer=_identity,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
