"""Long-lived calls re-check the credential they were opened with.

A stream (an event subscription, a WebSocket session) is authenticated when it
opens; without a re-check, revoking its key or letting its ticket expire
would not end it. ``CredentialWatch`` runs beside the call: every
``period_s`` it asks the check again (through the service's cached
authenticator, so a stream costs the credential service nothing extra), and
when the check fails it cancels the call's task and re-raises the failure
(``Unauthenticated``) from the ``async with`` block, so the call ends with
that status. Nothing runs per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType

from nodedrop.common.errors import PermissionDenied, Unauthenticated, Unavailable

__all__ = ["CredentialWatch"]


class CredentialWatch:
    def __init__(self, check: Callable[[], Awaitable[object]], period_s: float) -> None:
        self._check = check
        self._period_s = period_s
        self._owner: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.failure: Unauthenticated | PermissionDenied | None = None

    async def __aenter__(self) -> CredentialWatch:
        self._owner = asyncio.current_task()
        self._watcher = asyncio.create_task(self._watch(), name="credential-watch")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if self.failure is not None and isinstance(exc, asyncio.CancelledError):
            # The cancellation was ours: the call ends with the failure instead.
            assert self._owner is not None
            self._owner.uncancel()
            raise self.failure from None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            try:
                await self._check()
            except (Unauthenticated, PermissionDenied) as exc:
                self.failure = exc
                if self._owner is not None:
                    self._owner.cancel()
                return
            except Unavailable:
                # The credential service is away: the stream was valid when it
                # opened and nothing says otherwise yet; check again later.
                continue
