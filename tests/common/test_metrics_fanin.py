"""ProcessFanIn: children's samples labelled by process, a silent child reported down."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nodedrop.common.metrics import MetricsServer
from nodedrop.common.metrics_fanin import ProcessFanIn
from tests.helpers.ports import free_port


async def test_samples_carry_their_process_and_a_silent_child_is_down() -> None:
    child = CollectorRegistry()
    Counter("nodedrop_things", "Things.", ["kind"], registry=child).labels(kind="a").inc(3)
    fanin = ProcessFanIn()
    parent = CollectorRegistry(auto_describe=False)
    parent.register(fanin)
    async with MetricsServer("127.0.0.1:0", child) as server:
        fanin.add("0", f"http://127.0.0.1:{server.port}/metrics")
        fanin.add("1", f"http://127.0.0.1:{free_port()}/metrics")
        text = generate_latest(parent).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("nodedrop_things_total", (("kind", "a"), ("process", "0")))] == 3
    assert samples[("nodedrop_process_up", (("process", "0"),))] == 1
    assert samples[("nodedrop_process_up", (("process", "1"),))] == 0
    assert not any(
        dict(labels).get("process") == "1"
        for name, labels in samples
        if name != "nodedrop_process_up"
    )
