"""``Client``: the blocking face of ``AsyncClient``.

Each method runs the asynchronous one on an event loop the client owns
(``asyncio.Runner``), so both share one implementation; an iterator steps the
asynchronous one on the same loop. A ``Client`` belongs to one thread and
cannot be used from inside a running event loop (use ``AsyncClient`` there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from nodedrop.client.aio import AsyncClient
from nodedrop.client.config import ClientConfig
from nodedrop.common.tls import TlsSettings

__all__ = ["Client"]

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._runner.run(method(self._aio, *args, **kwargs))

    call.__doc__ = method.__doc__
    call.__name__ = method.__name__
    return call


async def _next(iterator: AsyncIterator[R]) -> R:
    return await anext(iterator)


async def _close(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _iterating(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[R]],
) -> Callable[Concatenate[Client, P], Iterator[R]]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        iterator = method(self._aio, *args, **kwargs)
        try:
            while True:
                try:
                    yield self._runner.run(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            if not self._runner_closed:
                self._runner.run(_close(iterator))

    call.__doc__ = method.__doc__
    call.__name__ = method.__name__
    return call


class Client:
    """A blocking client; use it as ``with Client() as client``. Same arguments as
    ``AsyncClient`` (values not given come from the environment)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str | None = None,
        events_address: str | None = None,
        tls: TlsSettings | None = None,
        timeout_s: float = 30.0,
        submit_attempts: int = 8,
        stream_reconnects: int = 8,
        config: ClientConfig | None = None,
    ) -> None:
        self._aio = AsyncClient(
            address,
            api_key=api_key,
            events_address=events_address,
            tls=tls,
            timeout_s=timeout_s,
            submit_attempts=submit_attempts,
            stream_reconnects=stream_reconnects,
            config=config,
        )
        self._runner = asyncio.Runner()
        self._runner_closed = False

    @property
    def config(self) -> ClientConfig:
        return self._aio.config

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._runner_closed:
            return
        try:
            self._runner.run(self._aio.close())
        finally:
            self._runner_closed = True
            self._runner.close()

    execute = _blocking(AsyncClient.execute)
    get_execution = _blocking(AsyncClient.get_execution)
    wait = _blocking(AsyncClient.wait)
    list_executions = _iterating(AsyncClient.list_executions)
    cancel = _blocking(AsyncClient.cancel)
    retry = _blocking(AsyncClient.retry)
    output = _blocking(AsyncClient.output)
    events = _iterating(AsyncClient.events)
    create_workflow = _blocking(AsyncClient.create_workflow)
    get_workflow = _blocking(AsyncClient.get_workflow)
    list_workflows = _iterating(AsyncClient.list_workflows)
    update_workflow = _blocking(AsyncClient.update_workflow)
    delete_workflow = _blocking(AsyncClient.delete_workflow)
    activate_workflow = _blocking(AsyncClient.activate_workflow)
    deactivate_workflow = _blocking(AsyncClient.deactivate_workflow)
    workflow_versions = _iterating(AsyncClient.workflow_versions)
    validate_workflow = _blocking(AsyncClient.validate_workflow)
    create_schedule = _blocking(AsyncClient.create_schedule)
    get_schedule = _blocking(AsyncClient.get_schedule)
    trigger_schedule = _blocking(AsyncClient.trigger_schedule)
    list_schedules = _blocking(AsyncClient.list_schedules)
    pause_schedule = _blocking(AsyncClient.pause_schedule)
    resume_schedule = _blocking(AsyncClient.resume_schedule)
    delete_schedule = _blocking(AsyncClient.delete_schedule)
    queue_stats = _blocking(AsyncClient.queue_stats)
    failed_jobs = _blocking(AsyncClient.failed_jobs)
    retry_failed = _blocking(AsyncClient.retry_failed)
    purge_failed = _blocking(AsyncClient.purge_failed)
    create_api_key = _blocking(AsyncClient.create_api_key)
    list_api_keys = _blocking(AsyncClient.list_api_keys)
    revoke_api_key = _blocking(AsyncClient.revoke_api_key)
