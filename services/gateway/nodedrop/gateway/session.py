"""One browser connection: its subscriptions, its commands, and its bounded outbox.

Everything sent to the client goes through one bounded outbox drained by one
sender task; a client that does not read fills it and is closed with 1013
(try again later) so it reconnects and resumes from its last sequence, while
the gateway never buffers without limit.

The session's credential is re-checked every ``recheck_s``: once its key is
revoked, or its ticket expired without a ``renew``, the socket is closed with
1008 (policy violation). A ticket session reads and subscribes; commands that
act (run_example, cancel) carry the API key they act with (docs/events.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc
from websockets.frames import CloseCode

from nodedrop.common.auth import SCOPE_EXECUTE, SCOPE_READ, Authenticator, Principal
from nodedrop.common.credential_watch import CredentialWatch
from nodedrop.common.errors import PermissionDenied, Unauthenticated, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import get_metrics
from nodedrop.event.v1 import event_pb2
from nodedrop.gateway import protocol
from nodedrop.gateway.upstream import Upstream, UpstreamError
from nodedrop.gateway.websocket import ConnectionClosed, WebSocket

log = get_logger("nodedrop.gateway.session")

SLOW_CONSUMER_REASON = "slow consumer: reconnect and resume from the last sequence"
CREDENTIAL_REASON = "credentials expired or revoked: renew the ticket or reconnect"


class Session:
    def __init__(
        self,
        connection: WebSocket,
        upstream: Upstream,
        principal: Principal,
        credential: str,
        *,
        outbox_size: int,
        max_subscriptions: int,
        authenticator: Authenticator | None = None,
        recheck_s: float = 5.0,
    ) -> None:
        self._connection = connection
        self._authenticator = authenticator
        self._recheck_s = recheck_s
        self._upstream = upstream
        self._principal = principal
        self._credential = credential
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(outbox_size)
        self._max_subscriptions = max_subscriptions
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._feed: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        metrics = get_metrics()
        self._m_delivered = metrics.events_delivered.labels(transport="websocket")
        self._m_subscribers = metrics.event_subscribers.labels(transport="websocket")
        self._m_cutoffs = metrics.slow_subscriber_cutoffs.labels(transport="websocket")

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            if self._authenticator is None:
                await self._receive()
            else:
                async with CredentialWatch(self._still_valid, self._recheck_s):
                    await self._receive()
        except ConnectionClosed:
            pass
        except (Unauthenticated, PermissionDenied) as exc:
            log.info("closing session", reason=exc.message, tenant_id=self._principal.tenant_id)
            await self._connection.close(CloseCode.POLICY_VIOLATION, CREDENTIAL_REASON)
        finally:
            tasks = [*self._subscriptions.values(), sender]
            if self._feed is not None:
                tasks.append(self._feed)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._closing is not None:
                await asyncio.gather(self._closing, return_exceptions=True)

    async def _receive(self) -> None:
        async for message in self._connection:
            await self._handle(message)

    async def _still_valid(self) -> None:
        assert self._authenticator is not None
        current = await self._authenticator.authenticate(self._credential)
        if current.tenant_id != self._principal.tenant_id or not current.has_scope(SCOPE_READ):
            raise PermissionDenied("the credential no longer reads this tenant")

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
            case protocol.RunExample(api_key):
                credential = await self._acting(api_key)
                if credential is not None:
                    await self._call("started", self._upstream.run_example(credential))
            case protocol.Cancel(execution_id, api_key):
                credential = await self._acting(api_key, execution_id)
                if credential is not None:
                    await self._call("cancelled", self._upstream.cancel(credential, execution_id))
            case protocol.Renew(ticket):
                await self._renew(ticket)
            case protocol.WatchExecutions():
                if self._feed is not None:
                    self._feed.cancel()
                self._feed = asyncio.create_task(self._watch_executions())
            case protocol.UnwatchExecutions():
                if self._feed is not None:
                    self._feed.cancel()
                    self._feed = None
                self._push(protocol.reply("unwatched_executions"))

    async def _list(self, limit: int) -> dict[str, object]:
        return {"items": await self._upstream.list_executions(self._credential, limit)}

    async def _acting(self, api_key: str | None, execution_id: str = "") -> str | None:
        """The credential a command that acts is made with: the key it carries
        (of this session's tenant, with the execute scope), else the session's
        own when that is a key that may execute; None after an error reply."""
        if api_key is None:
            if self._principal.has_scope(SCOPE_EXECUTE):
                return self._credential
            message = "this needs the 'execute' scope"
            if self._principal.ticket:
                message = "a ticket only watches: send the command with an 'api_key'"
            self._push(protocol.error_message("PERMISSION_DENIED", message, execution_id))
            return None
        code, message = "", ""
        try:
            principal = await self._authenticate(api_key)
        except (Unauthenticated, Unavailable) as exc:
            code = "UNAUTHENTICATED" if isinstance(exc, Unauthenticated) else "UNAVAILABLE"
            message = exc.message
        else:
            if principal.ticket or principal.tenant_id != self._principal.tenant_id:
                code, message = "PERMISSION_DENIED", "api_key must be a key of this tenant"
            elif not principal.has_scope(SCOPE_EXECUTE):
                code, message = "PERMISSION_DENIED", "this needs the 'execute' scope"
        if code:
            self._push(protocol.error_message(code, message, execution_id))
            return None
        return api_key

    async def _authenticate(self, credential: str) -> Principal:
        if self._authenticator is None:
            raise Unavailable("the gateway cannot check credentials")
        return await self._authenticator.authenticate(credential)

    async def _renew(self, ticket: str) -> None:
        """Swaps the session's credential for a fresh one of the same tenant;
        subscriptions move to it when the events service ends the old one's."""
        try:
            principal = await self._authenticate(ticket)
        except (Unauthenticated, Unavailable) as exc:
            code = "UNAUTHENTICATED" if isinstance(exc, Unauthenticated) else "UNAVAILABLE"
            self._push(protocol.error_message(code, exc.message))
            return
        if principal.tenant_id != self._principal.tenant_id or not principal.has_scope(SCOPE_READ):
            self._push(protocol.error_message("PERMISSION_DENIED", "not a ticket of this tenant"))
            return
        self._principal, self._credential = principal, ticket
        self._push(protocol.reply("renewed"))

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

    async def _relay(
        self,
        open_call: Callable[[str], grpc.aio.UnaryStreamCall],
        on_event: Callable[[event_pb2.ExecutionEvent], None],
        on_open: Callable[[], None] = lambda: None,
    ) -> bool:
        """Relays an upstream event stream to the client: True when it ended,
        False when it was cut off (the session closes) or cancelled; its
        failure raises UpstreamError. A stream the events service ends because
        the ticket it was opened with expired after a renew reopens with the
        current credential (``open_call`` decides where it resumes)."""
        while True:
            credential = self._credential
            call = open_call(credential)
            on_open()
            try:
                async for response in call:
                    # One WebSocket frame per event even though upstream batches: the
                    # browser protocol stays one message per event (docs/events.md).
                    for event in response.events:
                        on_event(event)
                    self._m_delivered.inc(len(response.events))
                return True
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and credential != self._credential:
                    continue
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # The events service cut this subscriber off: same remedy as a full outbox.
                    self._close_slow()
                elif code != grpc.StatusCode.CANCELLED:
                    raise UpstreamError.from_rpc(exc) from None
                return False
            finally:
                call.cancel()

    async def _follow(self, execution_id: str, after: int) -> None:
        last = after

        def sent(event: event_pb2.ExecutionEvent) -> None:
            nonlocal last
            last = event.sequence
            self._push(protocol.event_message(event))

        self._m_subscribers.inc()
        try:
            stream = self._upstream.stream_execution
            if await self._relay(lambda credential: stream(credential, execution_id, last), sent):
                self._push(protocol.complete_message(execution_id, last))
        except UpstreamError as error:
            self._push(protocol.error_message(error.code, error.message, execution_id))
        finally:
            self._m_subscribers.dec()
            if self._subscriptions.get(execution_id) is asyncio.current_task():
                del self._subscriptions[execution_id]

    async def _watch_executions(self) -> None:
        """The tenant's execution status events, for a list that stays current.
        The feed has no replay: ``watching_executions`` is sent each time it
        (re)opens, so the client reads the list again and misses nothing."""
        self._m_subscribers.inc()
        try:
            ended = await self._relay(
                self._upstream.stream_status_events,
                lambda event: self._push(protocol.event_message(event)),
                lambda: self._push(protocol.reply("watching_executions")),
            )
            if ended:
                raise UpstreamError("UNAVAILABLE", "the events service ended the feed")
        except UpstreamError as error:
            self._push(
                protocol.reply("unwatched_executions", code=error.code, message=error.message)
            )
        finally:
            self._m_subscribers.dec()
            if self._feed is asyncio.current_task():
                self._feed = None

    def _close_slow(self) -> None:
        if self._closing is None:
            log.info("closing slow consumer", tenant_id=self._principal.tenant_id)
            self._m_cutoffs.inc()
            self._closing = asyncio.create_task(
                self._connection.close(CloseCode.TRY_AGAIN_LATER, SLOW_CONSUMER_REASON)
            )
