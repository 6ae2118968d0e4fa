"""Errors of the API's domain.

    ApiDomainError
    ├── NotFoundError          the id is unknown to the caller's tenant
    ├── VersionConflictError   an optimistic-concurrency check failed
    └── StoreUnavailableError  the database cannot be reached (retryable)

The servicers convert them to nodedrop.common.errors at the gRPC boundary.
"""

from __future__ import annotations

__all__ = [
    "ApiDomainError",
    "NotFoundError",
    "StoreUnavailableError",
    "VersionConflictError",
]


class ApiDomainError(Exception):
    """Root of the API's domain errors."""


class NotFoundError(ApiDomainError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class VersionConflictError(ApiDomainError):
    def __init__(self, workflow_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is at version {actual}, not the expected {expected}"
        )
        self.expected = expected
        self.actual = actual


class StoreUnavailableError(ApiDomainError):
    """The execution store is unreachable; the caller may retry."""
