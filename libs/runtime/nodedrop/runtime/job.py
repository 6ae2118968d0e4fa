"""One attempt a worker holds: its lease, its buffered writes, its cancel token."""

from __future__ import annotations

import asyncio
import time

from nodedrop.engine.cancel import CancelToken
from nodedrop.store import Commit, EventDraft, ExecutionContext, Lease, Transition


class Job:
    """Mutable bookkeeping of one attempt (identity equality: a dict key of the
    committer).  A slotted class, not a dataclass: one is built per execution and
    the dataclass __init__ with default factories cost several microseconds."""

    __slots__ = (
        "cancel",
        "commits_sent",
        "ctx",
        "events",
        "fenced_out",
        "handed_back",
        "lease",
        "outputs",
        "slot_returned",
        "started",
        "task",
    )

    def __init__(self, lease: Lease, ctx: ExecutionContext) -> None:
        self.lease = lease
        self.ctx = ctx
        self.cancel = CancelToken()
        self.started = time.monotonic()
        # Writes not yet sent: committed together with the next flush.
        self.outputs: dict[str, str] = {}
        self.events: list[EventDraft] = []
        self.commits_sent = 0
        # Set when the fence refused a write: another worker owns the execution now.
        self.fenced_out = False
        # Set when the worker drains: the attempt is handed back, not ended.
        self.handed_back = False
        # Its slot went back when its engine finished; its end still commits.
        self.slot_returned = False
        self.task: asyncio.Task[None] | None = None

    @property
    def execution_id(self) -> str:
        return self.lease.execution_id

    def take_commit(self, transition: Transition | None = None) -> Commit | None:
        """The buffered writes as the next numbered commit (None if there is nothing)."""
        if not self.outputs and not self.events and transition is None:
            return None
        self.commits_sent += 1
        commit = Commit(self.lease, self.outputs, tuple(self.events), transition, self.commits_sent)
        self.outputs, self.events = {}, []
        return commit
