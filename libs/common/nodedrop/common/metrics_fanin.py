"""One ``/metrics`` for a group of processes: each child's samples, labelled
with its ``process`` index.

A ``ProcessGroup``'s children serve their own metrics on local ports; the
supervisor's endpoint scrapes them when it is scraped (in the exporter's
thread, off any event loop). A child that does not answer is left out of
that scrape and ``nodedrop_process_up{process=...}`` says so, the way
Prometheus's own ``up`` reports a target.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ProcessFanIn"]

_SCRAPE_TIMEOUT_S = 2.0


class ProcessFanIn:
    """A prometheus-client collector over the children's endpoints."""

    def __init__(self) -> None:
        self._targets: list[tuple[str, str]] = []

    def add(self, process: str, url: str) -> None:
        self._targets.append((process, url))

    def describe(self) -> list[Metric]:
        # Names are known only by scraping: none claimed at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        up = GaugeMetricFamily(
            "nodedrop_process_up",
            "Whether the process of the group answered this scrape (1) or not (0).",
            labels=["process"],
        )
        for process, url in self._targets:
            try:
                with urllib.request.urlopen(url, timeout=_SCRAPE_TIMEOUT_S) as response:
                    text = response.read().decode()
            except OSError:
                up.add_metric([process], 0)
                continue
            up.add_metric([process], 1)
            for family in text_string_to_metric_families(text):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    into.samples.append(
                        sample._replace(labels={**sample.labels, "process": process})
                    )
        yield up
        yield from merged.values()
