"""WebhookService (internal): the gateway hands each webhook call here, on
one stream that carries all its calls; the answer is the HTTP response it
sends back (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from nodedrop.api.executions import ExecutionManager, Submission
from nodedrop.api.limits import TokenBuckets
from nodedrop.api.model import WebhookRoute
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.subworkflows import SubworkflowPins
from nodedrop.api.webhooks import (
    Answer,
    AuthFailure,
    WebhookConfig,
    check_auth,
    config_of,
    find_by_path,
    finished_answer,
    retry_after,
    trigger_item,
)
from nodedrop.api.workflow_cache import CachedWorkflow, WorkflowCache
from nodedrop.common.auth import SCOPE_EXECUTE, Authenticator
from nodedrop.common.errors import INTERNAL_MESSAGE, NodedropError, Unauthenticated
from nodedrop.common.http_status import http_status
from nodedrop.common.logging import get_logger
from nodedrop.common.retry import Backoff
from nodedrop.store import EventLog, EventType
from nodedrop.webhook.v1 import webhook_service_pb2 as pb
from nodedrop.webhook.v1 import webhook_service_pb2_grpc

__all__ = ["WebhookServicer"]

log = get_logger("nodedrop.api.webhooks")

MAX_IDEMPOTENCY_KEY = 200
# How long a route lookup (found or not) is trusted: deactivation reaches
# every API replica's webhooks within this.
ROUTE_TTL_S = 1.0
_MAX_CACHED_ROUTES = 10_000
# An answer's bytes in a message beside its response's: its id and the field tags.
_FRAMING_BYTES = 32


class WebhookServicer(webhook_service_pb2_grpc.WebhookServiceServicer):
    def __init__(
        self,
        repository: ExecutionRepository,
        workflows: WorkflowCache,
        manager: ExecutionManager,
        authenticator: Authenticator,
        pins: SubworkflowPins,
        *,
        events: EventLog,
        rate: TokenBuckets | None,
        max_trigger_bytes: int,
        default_mode: str,
        max_message_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repository
        self._workflows = workflows
        self._manager = manager
        self._authenticator = authenticator
        self._pins = pins
        self._events = events
        self._rate = rate
        self._max_trigger_bytes = max_trigger_bytes
        self._default_mode = default_mode
        self._max_message_bytes = max_message_bytes
        self._clock = clock
        self._routes: dict[tuple[str, str], tuple[float, asyncio.Future[WebhookRoute | None]]] = {}

    async def HandleWebhooks(
        self, request_iterator: AsyncIterator[pb.HandleWebhooksRequest], context: object
    ) -> AsyncIterator[pb.HandleWebhooksResponse]:
        """Each call runs in its own task; the answers ready at the same time
        leave in one message, so a slow call holds up no other."""
        # Each answer with its size: a message stays within the gateway's limit.
        ready: deque[tuple[pb.WebhookAnswer, int]] = deque()
        wake = asyncio.Event()
        running: set[asyncio.Task[None]] = set()

        async def answer(call: pb.WebhookCall) -> None:
            response = await self._answer(call.request)
            size = response.ByteSize() + _FRAMING_BYTES
            if size > self._max_message_bytes:
                response = _response(
                    Answer.error(
                        500,
                        "RESOURCE_EXHAUSTED",
                        f"the answer is larger than a message may be ({size} bytes)",
                    ),
                    response.execution_id,
                )
                size = response.ByteSize() + _FRAMING_BYTES
            ready.append((pb.WebhookAnswer(id=call.id, response=response), size))

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            wake.set()

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    for call in batch.calls:
                        # A context of its own: each execution starts its own
                        # trace instead of joining the long-lived stream's.
                        task = asyncio.create_task(answer(call), context=contextvars.Context())
                        running.add(task)
                        task.add_done_callback(finished)
            finally:
                wake.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                if ready:
                    answers: list[pb.WebhookAnswer] = []
                    total = 0
                    while ready and total + ready[0][1] <= self._max_message_bytes:
                        one, one_size = ready.popleft()
                        answers.append(one)
                        total += one_size
                    yield pb.HandleWebhooksResponse(answers=answers)
                    continue
                if reader.done() and not running:
                    break
                wake.clear()
                await wake.wait()
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                # The gateway went away mid-read; its calls in flight end with it.
                log.info("webhook stream closed", reason=str(reader.exception()))

    async def _answer(self, request: pb.HandleWebhookRequest) -> pb.HandleWebhookResponse:
        execution_id = ""
        try:
            answer, execution_id = await self._handle(request)
        except NodedropError as exc:
            # The same status a gRPC caller would get, as HTTP.
            answer = Answer.error(http_status(exc.code), exc.code.name, exc.message)
        except Exception:
            # One call's bug must not end the stream the other calls share.
            log.exception("webhook call failed", tenant_id=request.tenant_id, path=request.path)
            answer = Answer.error(500, "INTERNAL", INTERNAL_MESSAGE)
        return _response(answer, execution_id)

    async def _route(self, tenant_id: str, path: str) -> WebhookRoute | None:
        key = (tenant_id, path)
        now = time.monotonic()
        cached = self._routes.get(key)
        if cached is None or cached[0] <= now:
            # One lookup per route and TTL, shared by the calls that arrive
            # while it runs: otherwise every call in flight when the entry
            # expires queries PostgreSQL.
            lookup = asyncio.ensure_future(self._repo.find_route(tenant_id, path))
            lookup.add_done_callback(lambda done: self._forget_failed(key, done))
            if len(self._routes) >= _MAX_CACHED_ROUTES:
                self._routes.clear()
            cached = self._routes[key] = (now + ROUTE_TTL_S, lookup)
        found = cached[1]
        if found.done():
            return found.result()
        # Shielded: a caller that goes away does not cancel the others' lookup.
        return await asyncio.shield(found)

    def _forget_failed(
        self, key: tuple[str, str], lookup: asyncio.Future[WebhookRoute | None]
    ) -> None:
        """A failed lookup is not cached: the next call tries again."""
        if lookup.cancelled() or lookup.exception() is not None:
            entry = self._routes.get(key)
            if entry is not None and entry[1] is lookup:
                del self._routes[key]

    async def _resolve(
        self, request: pb.HandleWebhookRequest
    ) -> tuple[str, CachedWorkflow, WebhookConfig] | Answer:
        path = request.path.strip("/")
        if request.test:
            try:
                principal = await self._authenticator.authenticate(request.api_key)
            except Unauthenticated as exc:
                return Answer.error(401, "UNAUTHENTICATED", f"test webhook: {exc.message}")
            if principal.ticket or not principal.has_scope(SCOPE_EXECUTE):
                return Answer.error(403, "PERMISSION_DENIED", "needs a key with 'execute'")
            tenant_id = principal.tenant_id
            cached = await self._workflows.get(tenant_id, request.workflow_id, None)
            config = find_by_path(cached.definition.document, path) if cached else None
        else:
            tenant_id = request.tenant_id
            route = await self._route(tenant_id, path)
            cached = config = None
            if route is not None:
                cached = await self._workflows.get(tenant_id, route.workflow_id, route.version)
                if cached is not None:
                    config = config_of(cached.definition.document, route.node_id)
        if cached is None or config is None:
            return Answer.error(404, "NOT_FOUND", "no active webhook at this path")
        return tenant_id, cached, config

    async def _handle(self, request: pb.HandleWebhookRequest) -> tuple[Answer, str]:
        resolved = await self._resolve(request)
        if isinstance(resolved, Answer):
            return resolved, ""
        tenant_id, cached, config = resolved
        method = request.method.upper()
        if method not in config.methods:
            allow = ", ".join(config.methods)
            return Answer.error(
                405, "METHOD_NOT_ALLOWED", f"allowed: {allow}", (("allow", allow),)
            ), ""
        headers = {h.name: h.value for h in request.headers}
        try:
            check_auth(config.auth, headers, request.body, self._clock())
        except AuthFailure as exc:
            extra = (("www-authenticate", exc.challenge),) if exc.challenge else ()
            return Answer.error(401, "UNAUTHENTICATED", exc.message, extra), ""
        if self._rate is not None:
            wait = self._rate.try_take(tenant_id)
            if wait > 0:
                return Answer.error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "the rate limit of this tenant is reached",
                    (("retry-after", retry_after(wait)),),
                ), ""
        key = headers.get("idempotency-key", "")
        if len(key) > MAX_IDEMPOTENCY_KEY:
            return Answer.error(
                400, "INVALID_ARGUMENT", f"Idempotency-Key: at most {MAX_IDEMPOTENCY_KEY} chars"
            ), ""
        item = trigger_item(
            method=method,
            path=request.path,
            headers=[(h.name, h.value) for h in request.headers],
            query=request.query,
            body=request.body,
            auth=config.auth,
        )
        trigger = orjson.dumps(item).decode()
        if len(trigger) > self._max_trigger_bytes:
            return Answer.error(
                413, "RESOURCE_EXHAUSTED", f"the request is larger than {self._max_trigger_bytes}"
            ), ""
        record = cached.record
        definition = await self._pins.pin(tenant_id, cached.definition, "workflow")
        submitted = await self._manager.submit(
            Submission(
                tenant_id=tenant_id,
                definition=definition,
                workflow_id=record.id,
                workflow_version=record.version,
                trigger_data_json=trigger,
                mode=self._default_mode,
                trigger_kind="webhook",
                priority=0,
                delay_s=0.0,
                # Scoped to the workflow: the same key on two webhooks is two calls.
                idempotency_key=f"webhook:{record.id}:{key}" if key else None,
            )
        )
        execution_id = submitted.execution_id
        accepted = Answer.json(
            202, {"execution_id": execution_id, "status": submitted.status.value}
        )
        if config.response_mode != "when_finished":
            return accepted, execution_id
        nodes = cached.definition.document.get("nodes") or []
        respond_ids = {n.get("id") for n in nodes if n.get("type") == "respond_to_webhook"}
        last = str(nodes[-1].get("id")) if nodes else None
        answer = await self._wait(execution_id, config.wait_s, respond_ids, last)
        return (accepted if answer is None else answer), execution_id

    async def _wait(
        self, execution_id: str, wait_s: float, respond_ids: set[Any], last_node_id: str | None
    ) -> Answer | None:
        """The answer once the execution's events show its end, None after ``wait_s``.

        The events are read from the execution's stream in the store, where
        the worker commits them, not from the database the history recorder
        fills later: the answer follows the end by one poll (<= 20 ms)."""
        deadline = time.monotonic() + wait_s
        backoff = Backoff(base_s=0.002, max_s=0.02, rng=lambda: 1.0)
        after = 0
        respond: str | None = None
        while True:
            for event in await self._events.read(execution_id, after, 500):
                after = event.sequence
                if event.type is EventType.NODE_COMPLETED and event.node_id in respond_ids:
                    respond = event.data_json or respond
                if event.terminal:
                    return finished_answer(
                        status=_ENDED[event.type],
                        result_json=event.data_json or None,
                        error_json=event.error.to_json() if event.error else None,
                        respond_outputs_json=respond,
                        last_node_id=last_node_id,
                    )
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await backoff.wait(min(backoff.next_delay(), left))


def _response(answer: Answer, execution_id: str) -> pb.HandleWebhookResponse:
    return pb.HandleWebhookResponse(
        status=answer.status,
        headers=[pb.Header(name=k, value=v) for k, v in answer.headers],
        body=answer.body,
        execution_id=execution_id,
    )


_ENDED = {
    EventType.EXECUTION_COMPLETED: "completed",
    EventType.EXECUTION_FAILED: "failed",
    EventType.EXECUTION_CANCELLED: "cancelled",
    EventType.EXECUTION_TIMED_OUT: "timed_out",
}
