"""One browser connection: its subscriptions, its commands, and its bounded outbox.

Everything sent to the client goes through one bounded outbox drained by one
sender task; a client that does not read fills it and is closed with 1013
(try again later) so it reconnects and resumes from its last sequence, while
the gateway never buffers without limit.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from nodedrop.common.auth import SCOPE_EXECUTE, Principal
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import get_metrics
from nodedrop.gateway import protocol
from nodedrop.gateway.upstream import Upstream, UpstreamError

log = get_logger("nodedrop.gateway.session")

SLOW_CONSUMER_REASON = "slow consumer: reconnect and resume from the last sequence"


class Session:
    def __init__(
        self,
        connection: ServerConnection,
        upstream: Upstream,
        principal: Principal,
        credential: str,
        *,
        outbox_size: int,
        max_subscriptions: int,
    ) -> None:
        self._connection = connection
        self._upstream = upstream
        self._principal = principal
        self._credential = credential
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(outbox_size)
        self._max_subscriptions = max_subscriptions
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._closing: asyncio.Task[None] | None = None
        metrics = get_metrics()
        self._m_delivered = metrics.events_delivered.labels(transport="websocket")
        self._m_subscribers = metrics.event_subscribers.labels(transport="websocket")
        self._m_cutoffs = metrics.slow_subscriber_cutoffs.labels(transport="websocket")

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            async for message in self._connection:
                await self._handle(message)
        except ConnectionClosed:
            pass
        finally:
            tasks = [*self._subscriptions.values(), sender]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._closing is not None:
                await asyncio.gather(self._closing, return_exceptions=True)

    def _push(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self._close_slow()

    async def _send_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await self._outbox.get()
                await self._connection.send(frame.decode())

    async def _handle(self, message: str | bytes) -> None:
        try:
            command = protocol.parse(message)
        except protocol.ProtocolError as exc:
            self._push(protocol.error_message("INVALID_ARGUMENT", str(exc), exc.execution_id))
            return
        match command:
            case protocol.Subscribe(execution_id, after):
                self._subscribe(execution_id, after)
            case protocol.Unsubscribe(execution_id):
                task = self._subscriptions.pop(execution_id, None)
                if task is not None:
                    task.cancel()
                self._push(protocol.reply("unsubscribed", execution_id=execution_id))
            case protocol.Ping(ping_id):
                self._push(protocol.reply("pong", id=ping_id))
            case protocol.ListExecutions(limit):
                await self._call("executions", self._list(limit))
            case protocol.RunExample():
                if self._may_execute():
                    await self._call("started", self._upstream.run_example(self._credential))
            case protocol.Cancel(execution_id):
                if self._may_execute(execution_id):
                    await self._call(
                        "cancelled", self._upstream.cancel(self._credential, execution_id)
                    )

    async def _list(self, limit: int) -> dict[str, object]:
        return {"items": await self._upstream.list_executions(self._credential, limit)}

    def _may_execute(self, execution_id: str = "") -> bool:
        if self._principal.has_scope(SCOPE_EXECUTE):
            return True
        self._push(
            protocol.error_message(
                "PERMISSION_DENIED", "this needs the 'execute' scope", execution_id
            )
        )
        return False

    async def _call(self, kind: str, pending: object) -> None:
        try:
            result = await pending  # type: ignore[misc]
        except UpstreamError as exc:
            self._push(protocol.error_message(exc.code, exc.message))
            return
        self._push(protocol.reply(kind, **result))

    def _subscribe(self, execution_id: str, after: int) -> None:
        previous = self._subscriptions.pop(execution_id, None)
        if previous is not None:
            previous.cancel()
        elif len(self._subscriptions) >= self._max_subscriptions:
            self._push(
                protocol.error_message(
                    "RESOURCE_EXHAUSTED",
                    f"at most {self._max_subscriptions} subscriptions per connection",
                    execution_id,
                )
            )
            return
        self._subscriptions[execution_id] = asyncio.create_task(self._follow(execution_id, after))

    async def _follow(self, execution_id: str, after: int) -> None:
        call = self._upstream.stream_execution(self._credential, execution_id, after)
        last = after
        self._m_subscribers.inc()
        try:
            async for response in call:
                # One WebSocket frame per event even though upstream batches: the
                # browser protocol stays one message per event (docs/events.md).
                for event in response.events:
                    last = event.sequence
                    self._push(protocol.event_message(event))
                self._m_delivered.inc(len(response.events))
            self._push(protocol.complete_message(execution_id, last))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                # The events service cut this subscriber off: same remedy as a full outbox.
                self._close_slow()
            elif exc.code() != grpc.StatusCode.CANCELLED:
                error = UpstreamError.from_rpc(exc)
                self._push(protocol.error_message(error.code, error.message, execution_id))
        finally:
            self._m_subscribers.dec()
            call.cancel()
            if self._subscriptions.get(execution_id) is asyncio.current_task():
                del self._subscriptions[execution_id]

    def _close_slow(self) -> None:
        if self._closing is None:
            log.info("closing slow consumer", tenant_id=self._principal.tenant_id)
            self._m_cutoffs.inc()
            self._closing = asyncio.create_task(
                self._connection.close(CloseCode.TRY_AGAIN_LATER, SLOW_CONSUMER_REASON)
            )
