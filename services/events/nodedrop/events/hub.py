"""In-memory fan-out from the process's single Redis reader to its subscribers.

Subscribers register either for one execution or for a tenant's whole feed
(with a filter). Publishing is synchronous and never blocks on a subscriber:
each one has its own bounded mailbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nodedrop.common.metrics import Metrics
from nodedrop.events.live import EventRun, LiveEvent
from nodedrop.events.mailbox import Mailbox


class _NoMetric:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass


class FanoutHub:
    def __init__(self, mailbox_capacity: int, metrics: Metrics | None = None) -> None:
        self._capacity = mailbox_capacity
        self._by_execution: dict[str, set[Mailbox]] = {}
        self._by_tenant: dict[str, set[Mailbox]] = {}
        self.published = 0
        self.overflows = 0
        if metrics is None:
            self._m_delivered: Any = _NoMetric()
            self._m_subscribers: Any = _NoMetric()
            self._m_cutoffs: Any = _NoMetric()
        else:
            self._m_delivered = metrics.events_delivered.labels(transport="grpc")
            self._m_subscribers = metrics.event_subscribers.labels(transport="grpc")
            self._m_cutoffs = metrics.slow_subscriber_cutoffs.labels(transport="grpc")

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_execution.values()) + sum(
            len(s) for s in self._by_tenant.values()
        )

    @contextmanager
    def execution(self, execution_id: str) -> Iterator[Mailbox]:
        mailbox = Mailbox(self._capacity)
        with self._registered(self._by_execution, execution_id, mailbox):
            yield mailbox

    @contextmanager
    def tenant(
        self, tenant_id: str, matches: Callable[[LiveEvent], bool] | None = None
    ) -> Iterator[Mailbox]:
        mailbox = Mailbox(self._capacity, matches)
        with self._registered(self._by_tenant, tenant_id, mailbox):
            yield mailbox

    @contextmanager
    def _registered(
        self, index: dict[str, set[Mailbox]], key: str, mailbox: Mailbox
    ) -> Iterator[None]:
        index.setdefault(key, set()).add(mailbox)
        self._m_subscribers.inc()
        try:
            yield
        finally:
            self._m_subscribers.dec()
            members = index.get(key)
            if members is not None:
                members.discard(mailbox)
                if not members:
                    del index[key]
            if mailbox.overflowed:
                self.overflows += 1
                self._m_cutoffs.inc()

    def publish(self, events: Iterable[LiveEvent]) -> None:
        # Grouped by subscription key first, so each mailbox takes a commit's
        # events in one call: per subscriber the cost is per publish, not per
        # event (at 100 subscribers the per-event calls were most of it).
        by_execution = self._by_execution
        by_tenant = self._by_tenant
        for_execution: dict[str, EventRun] = {}
        for_tenant: dict[str, EventRun] = {}
        published = 0
        for event in events:
            published += 1
            if event.execution_id in by_execution:
                run = for_execution.get(event.execution_id)
                if run is None:
                    run = for_execution[event.execution_id] = EventRun()
                run.append(event)
            if event.tenant_id in by_tenant:
                run = for_tenant.get(event.tenant_id)
                if run is None:
                    run = for_tenant[event.tenant_id] = EventRun()
                run.append(event)
        self.published += published
        delivered = 0
        for index, groups in ((by_execution, for_execution), (by_tenant, for_tenant)):
            for key, group in groups.items():
                members = index[key]
                for mailbox in members:
                    mailbox.offer_many(group)
                delivered += len(group) * len(members)
        # One counter update per batch: the metric's lock is not free per event.
        if delivered:
            self._m_delivered.inc(delivered)
