"""The whole system as real processes for the client's tests: scheduler, worker,
API (tests.helpers.system) and the events service, with the tenant's key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.helpers.services import ServiceProcess, start_service
from tests.helpers.system import System, running_system

__all__ = ["ClientSystem", "LosesFirstAnswer", "client_system"]


@dataclass
class ClientSystem:
    system: System
    events: ServiceProcess
    stack: contextlib.AsyncExitStack

    @property
    def api_address(self) -> str:
        return self.system.env["NODEDROP_API_ADDR"]

    @property
    def events_address(self) -> str:
        return self.system.env["NODEDROP_EVENTS_ADDR"]

    @property
    def key(self) -> str:
        return self.system.apis[0].key

    async def restart_events(self, down_s: float) -> None:
        """Kills the events service (no goodbye to its streams), then starts a new one."""
        self.events.process.kill()
        await self.events.process.wait()
        await asyncio.sleep(down_s)
        self.events = await self.stack.enter_async_context(_events(self.system))


def _events(system: System) -> contextlib.AbstractAsyncContextManager[ServiceProcess]:
    port = int(system.env["NODEDROP_EVENTS_ADDR"].rsplit(":", 1)[1])
    return start_service("events", env=system.env, port=port)


@contextlib.asynccontextmanager
async def client_system(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> AsyncIterator[ClientSystem]:
    async with (
        running_system(redis_url, redis_prefix, pg_dsn) as system,
        contextlib.AsyncExitStack() as stack,
    ):
        events = await stack.enter_async_context(_events(system))
        yield ClientSystem(system, events, stack)


class LosesFirstAnswer:
    """A TCP proxy to the API that delivers the first large request, then resets
    the caller's connection while keeping the API's open: the API handles the
    call to the end, and its answer is lost (what a caller sees when the network
    drops after sending). Later connections go through untouched."""

    def __init__(self, target_port: int, *, min_request_bytes: int) -> None:
        self._target_port = target_port
        self._min = min_request_bytes
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.cut = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        lost = asyncio.Event()

        async def to_api() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
                if not self.cut and len(data) >= self._min:
                    self.cut = True
                    lost.set()
                    writer.transport.abort()
                    return

        async def to_caller() -> None:
            while data := await up_reader.read(65536):
                if lost.is_set():
                    continue
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(to_api(), to_caller(), return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._handlers.discard(task)
