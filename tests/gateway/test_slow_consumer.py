"""A client that stops reading, over a real TCP socket, is closed with 1013.

The client's receive buffer is shrunk (SO_RCVBUF) and the client library stops
reading its socket after a few frames (max_queue), so the kernel buffers fill
and the gateway's sends wait; with a small write limit and outbox the gateway
must then give up on the client instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nodedrop.common.metrics import get_metrics
from nodedrop.gateway.session import SLOW_CONSUMER_REASON
from nodedrop.store import EventType

from .conftest import KEY_A, GatewayStack, open_gateway_stack

EVENTS = 400
# ~8 KB per event frame: 400 of them (3.2 MB) cannot all sit in a 4 KB
# receive window, a 16-frame outbox and a 4 KB write buffer.
BLOB = '{"blob": "' + "x" * 8_000 + '"}'


@pytest.fixture
async def tight(redis: Redis) -> AsyncIterator[GatewayStack]:
    async for stack in open_gateway_stack(
        redis, outbox=16, max_frame=16 * 1024, write_limit=4 * 1024
    ):
        yield stack


def _cutoffs() -> float:
    value: Any = get_metrics().slow_subscriber_cutoffs.labels(transport="websocket")
    return float(value._value.get())


def _small_receive_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect(), so the window the kernel advertises starts small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_client_that_stops_reading_is_closed_with_1013(tight: GatewayStack) -> None:
    execution_id = "ex-stuck"
    writer: Any = tight.writer
    await writer.write(execution_id, [EventType.EXECUTION_QUEUED])
    port = int(tight.http.rsplit(":", 1)[1])
    before = _cutoffs()
    async with connect(
        tight.url,
        sock=_small_receive_socket(port),
        additional_headers={"Authorization": f"Bearer {KEY_A}"},
        max_queue=4,
        max_size=64 * 1024,
        # The gateway closes while its buffers are full; give the close time to arrive.
        close_timeout=10,
    ) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "execution_id": execution_id}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["sequence"] == 1
        # From here on the client reads nothing while the execution emits.
        for _ in range(EVENTS // 50):
            await writer.write(execution_id, [EventType.NODE_COMPLETED] * 50, data_json=BLOB)
        # Polled: the cut-off shows only in the metric (the client is not reading).
        for _ in range(300):
            if _cutoffs() > before:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the gateway never cut off the client that stopped reading")
        # Now drain: what was in flight, then the close, which must be 1013.
        received = 1
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:
                    message = orjson.loads(await ws.recv())
                    assert message["type"] == "event"
                    received += 1
                    assert message["sequence"] == received
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013
    assert closed.value.rcvd.reason == SLOW_CONSUMER_REASON
    # It was cut off well before the end: the gateway did not buffer everything.
    assert received < EVENTS
