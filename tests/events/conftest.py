"""Test doubles and helpers for the events service tests.

`FakeAuthService` stands in for the API's AuthService (a test double of the
remote service, not production code); `EventWriter` writes events the way the
store's committers do (both streams, entry id "<seq>-0" in the execution's).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import timestamp_pb2
from redis.asyncio import Redis

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import RemoteAuthenticator
from nodedrop.events.feed import LiveFeed
from nodedrop.events.history import ApiHistory
from nodedrop.events.hub import FanoutHub
from nodedrop.events.servicer import EventServicer, add_to_server
from nodedrop.events.subscription import Subscriptions
from nodedrop.store import EventError, EventRecord, EventType, Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_cluster import RedisClusterStore
from tests.helpers.redis_cluster import raw_client, store_on

KEY_A = "key-tenant-a"
KEY_B = "key-tenant-b"
KEY_NO_READ = "key-no-read"
TICKET_A = "ticket-tenant-a"
TICKET_EXPIRED = "ticket-expired"


class FakeAuthService(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(self) -> None:
        self.tickets: dict[str, tuple[str, float]] = {TICKET_A: ("tenant-a", time.time() + 60)}

    async def Authenticate(
        self, request: auth_service_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.AuthenticateResponse:
        keys = {
            KEY_A: ("tenant-a", [auth_service_pb2.SCOPE_READ, auth_service_pb2.SCOPE_EXECUTE]),
            KEY_B: ("tenant-b", [auth_service_pb2.SCOPE_READ]),
            KEY_NO_READ: ("tenant-a", [auth_service_pb2.SCOPE_EXECUTE]),
        }
        if request.credential in keys:
            tenant, scopes = keys[request.credential]
            return auth_service_pb2.AuthenticateResponse(
                tenant_id=tenant, scopes=scopes, key_id=request.credential
            )
        ticket = self.tickets.get(request.credential)
        if ticket is not None and ticket[1] > time.time():
            expire = timestamp_pb2.Timestamp()
            expire.FromNanoseconds(int(ticket[1] * 1e9))
            return auth_service_pb2.AuthenticateResponse(
                tenant_id=ticket[0],
                scopes=[auth_service_pb2.SCOPE_READ, auth_service_pb2.SCOPE_EXECUTE],
                key_id=KEY_A,
                expire_time=expire,
            )
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or expired credential")
        raise AssertionError("unreachable")

    async def IssueTicket(
        self, request: auth_service_pb2.IssueTicketRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.IssueTicketResponse:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {KEY_A}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid API key is needed")
        ticket = f"ticket-{len(self.tickets)}-{time.monotonic_ns()}"
        self.tickets[ticket] = ("tenant-a", time.time() + 60)
        return auth_service_pb2.IssueTicketResponse(ticket=ticket)

    # Key management is not part of what these tests exercise.
    async def CreateApiKey(
        self, request: auth_service_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.CreateApiKeyResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the test double")
        raise AssertionError("unreachable")

    async def ListApiKeys(
        self, request: auth_service_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ListApiKeysResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the test double")
        raise AssertionError("unreachable")

    async def RevokeApiKey(
        self, request: auth_service_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.RevokeApiKeyResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the test double")
        raise AssertionError("unreachable")


@dataclass
class EventWriter:
    redis: Redis
    keys: Keys
    tenant_id: str = "tenant-a"
    workflow_id: str = "wf-1"
    maxlen: int = 100_000
    _seqs: dict[str, int] = field(default_factory=dict)
    # Writes of one writer are serialized, as a worker's fenced commits are per
    # execution: concurrent callers never take the same sequence.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def write(
        self,
        execution_id: str,
        types: list[EventType],
        *,
        data_json: str = "",
        partition_stream: bool = True,
        tenant_id: str | None = None,
        node_id: str = "n1",
    ) -> list[EventRecord]:
        async with self._lock:
            return await self._write(
                execution_id,
                types,
                data_json=data_json,
                partition_stream=partition_stream,
                tenant_id=tenant_id,
                node_id=node_id,
            )

    async def _write(
        self,
        execution_id: str,
        types: list[EventType],
        *,
        data_json: str,
        partition_stream: bool,
        tenant_id: str | None,
        node_id: str,
    ) -> list[EventRecord]:
        records = []
        seq = self._seqs.get(execution_id, 0)
        now_ms = int(time.time() * 1000)
        for t in types:
            seq += 1
            records.append(
                EventRecord(
                    execution_id=execution_id,
                    sequence=seq,
                    type=t,
                    time_ms=now_ms,
                    workflow_id=self.workflow_id,
                    tenant_id=tenant_id or self.tenant_id,
                    node_id=node_id if t.value.startswith("NODE") else "",
                    data_json=data_json,
                    error=EventError("boom", "E") if t is EventType.NODE_FAILED else None,
                )
            )
        p = self.keys.partition(execution_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in records:
                fields = r.to_fields()
                pipe.xadd(self.keys.exec_events(execution_id), fields, id=f"{r.sequence}-0")  # type: ignore[arg-type]
                if partition_stream:
                    pipe.xadd(self.keys.events(p), fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()
        # Only once written, so a failed write can be retried with the same sequences.
        self._seqs[execution_id] = seq
        return records


async def restart_server(stack: EventsStack) -> None:
    """Stops the gRPC server (every open stream breaks) and serves again on the same port."""
    await stack.server.stop(0)
    server = grpc.aio.server()
    add_to_server(stack.servicer, server)
    server.add_insecure_port(stack.address)
    await server.start()
    stack.server = server


@dataclass
class EventsStack:
    address: str
    hub: FanoutHub
    keys: Keys
    writer: EventWriter
    server: grpc.aio.Server
    feed_task: asyncio.Task[None]
    servicer: EventServicer


async def start_auth_server() -> tuple[grpc.aio.Server, str, FakeAuthService]:
    server = grpc.aio.server()
    fake = FakeAuthService()
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}", fake


async def start_events(
    redis: Redis, keys: Keys, auth_address: str, *, capacity: int = 4096, history: bool = False
) -> AsyncIterator[EventsStack]:
    hub = FanoutHub(capacity)
    source = store_on(redis, StoreConfig(keys=keys))
    feed = LiveFeed(source, hub, block_ms=200)
    feed_task = asyncio.create_task(feed.run())
    auth_channel = grpc.aio.insecure_channel(auth_address)
    # The API's recorded history, when asked for, is served by the same test server.
    subscriptions = Subscriptions(
        hub, source, feed.ready, history=ApiHistory(auth_channel) if history else None
    )
    servicer = EventServicer(subscriptions, RemoteAuthenticator(auth_channel))
    server = grpc.aio.server()
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await feed.ready.wait()
    try:
        stack = EventsStack(
            f"127.0.0.1:{port}", hub, keys, EventWriter(redis, keys), server, feed_task, servicer
        )
        yield stack
    finally:
        await stack.server.stop(0)
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)
        if isinstance(source, RedisClusterStore):
            await source.stop_reads()
        await auth_channel.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = raw_client(redis_url, decode_responses=True, protocol=2)
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"t-ev-{uuid.uuid4().hex[:10]}", partitions=4)


@pytest.fixture
async def auth_address() -> AsyncIterator[str]:
    server, address, _ = await start_auth_server()
    yield address
    await server.stop(0)


@pytest.fixture
async def stack(redis: Redis, keys: Keys, auth_address: str) -> AsyncIterator[EventsStack]:
    async for s in start_events(redis, keys, auth_address):
        yield s
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        await redis.delete(key)
