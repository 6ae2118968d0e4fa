"""Relaying a server-streaming call to an HTTP response that stays open.

Errors the upstream answers at once (a bad key, an unknown id) become the
HTTP status of the response; only a stream that has started reports its end
in its own framing. The client's disconnect cancels the upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from nodedrop.gateway.httpapi.asgi import ClientGone, Receive, Send
from nodedrop.gateway.httpapi.errors import ApiError

__all__ = ["relay"]

# How long the response headers wait for the upstream's first answer, so an
# immediate refusal still gets its HTTP status; a quiet stream starts anyway.
_FIRST_ANSWER_S = 0.5


async def relay(
    call: grpc.aio.UnaryStreamCall,
    receive: Receive,
    send: Send,
    content_type: str,
    *,
    encode: Callable[[Message], bytes],
    end: Callable[[ApiError | None], bytes],
    idle: tuple[bytes, float] | None = None,
) -> None:
    """``encode`` frames one response message; ``end`` frames the stream's end;
    ``idle`` is a frame sent after that many seconds without one, so proxies
    and clients do not take a quiet stream (a long wait node) for a dead one."""
    pending: asyncio.Future[Any] = asyncio.ensure_future(call.read())
    try:
        await asyncio.wait({pending}, timeout=_FIRST_ANSWER_S)
        if pending.done() and pending.exception() is not None:
            exc = pending.exception()
            if isinstance(exc, grpc.aio.AioRpcError):
                raise ApiError.from_rpc(exc)
            raise exc  # type: ignore[misc]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        watcher = asyncio.ensure_future(_disconnected(receive))
        error: ApiError | None = None
        try:
            while True:
                waiting: list[asyncio.Future[Any]] = [pending, watcher]
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=None if idle is None else idle[1],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done and idle is not None:
                    await send({"type": "http.response.body", "body": idle[0], "more_body": True})
                    continue
                if watcher.done():
                    raise ClientGone
                try:
                    reply = pending.result()
                except grpc.aio.AioRpcError as exc:
                    error = ApiError.from_rpc(exc)
                    break
                if reply is grpc.aio.EOF:
                    break
                assert isinstance(reply, Message)
                await send({"type": "http.response.body", "body": encode(reply), "more_body": True})
                pending = asyncio.ensure_future(call.read())
        finally:
            watcher.cancel()
        await send({"type": "http.response.body", "body": end(error), "more_body": False})
    finally:
        call.cancel()
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pending


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
