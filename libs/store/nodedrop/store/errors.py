"""Errors of the store.

StoreError
├── NotFound            the execution (or schedule) is unknown
├── PermissionDenied    the execution belongs to another tenant
├── InvalidJob          a job spec the store refuses (field, reason)
├── Misconfigured       the backend is not what the settings say (a cluster node
│                       behind a single-node URL, another partition count):
│                       the service must not start
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


class Unavailable(StoreError, ConnectionError):
    """Raised by every port method when its backend is down, unreachable, loading
    or failing over; the backend's own exception is the ``__cause__``.

    Also a ``ConnectionError`` (an ``OSError``): code that handles network
    failures in general handles this one too."""
