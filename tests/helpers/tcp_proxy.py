"""A TCP proxy on 127.0.0.1 that can be cut: a network partition on demand.

One worker reaches Redis through it. ``cut()`` closes every connection and
refuses new ones until ``heal()`` (what a host sees when its network to
Redis drops); ``stall()`` keeps connections open but stops forwarding bytes
(a partition where packets vanish, no reset), until ``heal()``. ``delay_s``
holds every chunk that long before forwarding it (a slow link).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["TcpProxy"]

_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int, *, host: str = "127.0.0.1", delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._host = host
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.cut_now = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        self._flowing.set()

    def cut(self) -> None:
        """Reset every connection and refuse new ones."""
        self.cut_now = True
        self._drop_all()

    def stall(self) -> None:
        """Keep connections, forward nothing (a silent partition)."""
        self._flowing.clear()

    def heal(self) -> None:
        self.cut_now = False
        self._flowing.set()

    def _drop_all(self) -> None:
        for a, b in list(self._pairs):
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        finally:
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            await self._flowing.wait()
            if self.cut_now:
                break
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.transport.abort()
