"""Upstream calls by method path, with the serializers of the descriptors' messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import Message

from nodedrop.gateway.httpapi.catalog import Method, Upstream
from nodedrop.gateway.httpapi.errors import ApiError

__all__ = ["Calls"]

Metadata = tuple[tuple[str, str], ...]


class Calls:
    def __init__(
        self, methods: Iterable[Method], api: grpc.aio.Channel, events: grpc.aio.Channel
    ) -> None:
        self._unary: dict[str, Any] = {}
        self._stream: dict[str, Any] = {}
        for m in methods:
            channel = api if m.upstream is Upstream.API else events
            table, factory = (
                (self._stream, channel.unary_stream)
                if m.server_streaming
                else (self._unary, channel.unary_unary)
            )
            table[m.path] = factory(
                m.path,
                request_serializer=m.request.SerializeToString,
                response_deserializer=m.response.FromString,
            )

    async def unary(
        self, path: str, request: Message, metadata: Metadata, timeout_s: float
    ) -> Message:
        try:
            reply: Message = await self._unary[path](request, metadata=metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc(exc) from None
        return reply

    def stream(self, path: str, request: Message, metadata: Metadata) -> grpc.aio.UnaryStreamCall:
        # No deadline: a stream lasts as long as its subject; the channel's
        # keepalive finds a dead upstream, and a client's disconnect cancels it.
        call: grpc.aio.UnaryStreamCall = self._stream[path](request, metadata=metadata)
        return call
