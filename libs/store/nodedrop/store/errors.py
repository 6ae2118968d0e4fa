"""Errors of the store.

StoreError
├── NotFound            the execution (or schedule) is unknown
├── PermissionDenied    the execution belongs to another tenant
├── InvalidJob          a job spec the store refuses (field, reason)
├── Misconfigured       the backend is not what the settings say (a cluster node
│   │                   behind a single-node URL, another partition count):
│   │                   the service must not start
│   └── Unusable        `nodedrop dev` cannot start on the Redis it was given
└── Unavailable         the store cannot be reached or did not answer in time:
                        nothing was refused, the same call may succeed later
"""

from __future__ import annotations


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class PermissionDenied(StoreError):
    pass


class InvalidJob(StoreError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Misconfigured(StoreError):
    pass


class Unusable(Misconfigured):
    """`nodedrop dev` was given a Redis (REDIS_URL, or a server answering on the
    default address) it cannot use: nothing answers at an explicit address, the
    login is refused, it is a cluster node, or it does not speak Redis. The
    start stops here rather than fall back to memory, which would hide it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(StoreError, ConnectionError):
    """Raised by every port method when its backend is down, unreachable, loading
    or failing over; the backend's own exception is the ``__cause__``.

    Also a ``ConnectionError`` (an ``OSError``): code that handles network
    failures in general handles this one too."""
