"""Errors of the API's domain.

    ApiDomainError (mixin root)
    ├── NotFoundError          + common NotFound:     the id is unknown to the caller's tenant
    ├── VersionConflictError   + common Aborted:      an optimistic-concurrency check failed
    ├── RouteTakenError        + common AlreadyExists: a webhook path is another workflow's
    └── StoreUnavailableError  + common Unavailable:  the database cannot be reached (retryable)

Each also derives from its nodedrop.common.errors class, so the server's
error interceptor maps it to the right status without per-servicer code.
"""

from __future__ import annotations

from nodedrop.common.errors import Aborted, AlreadyExists, NotFound, Unavailable

__all__ = [
    "ApiDomainError",
    "NotFoundError",
    "RouteTakenError",
    "StoreUnavailableError",
    "VersionConflictError",
]


class ApiDomainError(Exception):
    """Root of the API's domain errors."""


class NotFoundError(NotFound, ApiDomainError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class VersionConflictError(Aborted, ApiDomainError):
    def __init__(self, workflow_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is at version {actual}, not the expected {expected}"
        )
        self.expected = expected
        self.actual = actual


class RouteTakenError(AlreadyExists, ApiDomainError):
    """Names the holder: routes are per tenant, so it is always the caller's own workflow."""

    def __init__(self, path: str, holder_workflow_id: str) -> None:
        super().__init__(
            f"webhook path {path!r} is taken by active workflow {holder_workflow_id!r}"
        )
        self.path = path
        self.holder_workflow_id = holder_workflow_id


class StoreUnavailableError(Unavailable, ApiDomainError):
    """The execution store is unreachable; the caller may retry.

    ``message`` is what a client is told; ``reason`` (the driver's error) is
    for the logs only (``str(error)`` has both): it names hosts, users and
    database internals a caller has no business seeing.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.message}: {self.reason}" if self.reason else self.message
