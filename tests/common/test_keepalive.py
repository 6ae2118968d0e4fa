"""Keepalive: a client pinging at the configured interval over an idle stream
is never told "too_many_pings" (a GOAWAY that drops the connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from nodedrop.common.server import grpc_options

# The ping interval, shortened (gRPC pings at most once a second) so a few
# seconds hold several pings; the server's tolerance scales with it as it does
# at the real interval. A server that does not tolerate them answers the third
# one it refuses with GOAWAY "too_many_pings".
KEEPALIVE_MS = 1000
IDLE_S = 8.0


def _identity(b: bytes) -> bytes:
    return b


async def _idle_then_peer(request: bytes, context: Any) -> AsyncIterator[bytes]:
    # No data frame meanwhile: only keepalive pings cross the connection.
    await asyncio.sleep(float(request))
    yield str(context.peer()).encode()


@pytest.mark.slow
async def test_pings_at_the_keepalive_interval_keep_the_connection() -> None:
    options = grpc_options(4 * 1024 * 1024, keepalive_ms=KEEPALIVE_MS)
    server = grpc.aio.server(options=options)
    handler = grpc.unary_stream_rpc_method_handler(_idle_then_peer, _identity, _identity)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Idle", {"Wait": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            wait = channel.unary_stream("/test.Idle/Wait", _identity, _identity)
            # A stream in flight outlives a GOAWAY; the connection does not, so
            # the next call comes from another client port.
            (idle_peer,) = [r async for r in wait(str(IDLE_S).encode(), timeout=IDLE_S + 10)]
            (next_peer,) = [r async for r in wait(b"0", timeout=10)]
            assert next_peer == idle_peer
    finally:
        await server.stop(None)


def test_every_option_is_a_grpc_channel_argument() -> None:
    # gRPC ignores an unknown channel argument without a word. These are the
    # names gRPC core defines for what grpc_options sets (grpc_types.h).
    known = {
        "grpc.max_send_message_length",
        "grpc.max_receive_message_length",
        "grpc.keepalive_time_ms",
        "grpc.keepalive_timeout_ms",
        "grpc.keepalive_permit_without_calls",
        "grpc.http2.max_pings_without_data",
        "grpc.http2.min_ping_interval_without_data_ms",
    }
    names = {name for name, _ in grpc_options(1024)}
    assert names == known, names ^ known
