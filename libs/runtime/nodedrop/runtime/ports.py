"""What a runtime host needs of the store: its queue and its state."""

from __future__ import annotations

from typing import Protocol

from nodedrop.store import JobQueue, StateStore


class Store(JobQueue, StateStore, Protocol):
    """The job queue and the execution state, as one adapter provides them."""
