"""A cancellation signal that interrupts a running execution at once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable


class CancelToken:
    """Set once, from any coroutine of the same loop; callbacks fire immediately.

    Unlike polling a flag, the callbacks let the executor cancel the task that is
    awaiting a wait node or an HTTP request the moment the token is set.
    """

    __slots__ = ("_callbacks", "_cancelled", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self, reason: str = "cancelled") -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self.reason = reason
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb()

    def add_callback(self, cb: Callable[[], None]) -> Callable[[], None]:
        """Register ``cb``; returns a function that unregisters it."""
        if self._cancelled:
            cb()
            return _noop
        self._callbacks.append(cb)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(cb)

        return remove


def _noop() -> None:
    return None
