"""One attempt a worker holds: its lease, its buffered writes, its cancel token."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from nodedrop.engine.cancel import CancelToken
from nodedrop.store import Commit, EventDraft, ExecutionContext, Lease, Transition


@dataclass(eq=False)
class Job:
    lease: Lease
    ctx: ExecutionContext
    cancel: CancelToken = field(default_factory=CancelToken)
    started: float = field(default_factory=time.monotonic)
    # Writes not yet sent: committed together with the next flush.
    outputs: dict[str, str] = field(default_factory=dict)
    events: list[EventDraft] = field(default_factory=list)
    commits_sent: int = 0
    # Set when the fence refused a write: another worker owns the execution now.
    fenced_out: bool = False
    # Set when the worker drains: the attempt is handed back, not ended.
    handed_back: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def execution_id(self) -> str:
        return self.lease.execution_id

    def take_commit(self, transition: Transition | None = None) -> Commit | None:
        """The buffered writes as the next numbered commit (None if there is nothing)."""
        if not self.outputs and not self.events and transition is None:
            return None
        self.commits_sent += 1
        commit = Commit(
            self.lease,
            outputs=self.outputs,
            events=tuple(self.events),
            transition=transition,
            number=self.commits_sent,
        )
        self.outputs, self.events = {}, []
        return commit
