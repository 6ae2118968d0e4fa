"""The client's reading of the API's messages: statuses in the proto's words,
what a stopped execution's running node becomes, items per port."""

from __future__ import annotations

import pytest

from nodedrop.client import ExecutionStatus, NodeRunStatus
from nodedrop.client.convert import execution_of, status_value
from nodedrop.execution.v1 import execution_pb2 as pb


def _execution(status: int, *runs: pb.NodeRun) -> pb.Execution:
    return pb.Execution(id="e", status=status, node_runs=list(runs))  # type: ignore[arg-type]


def test_every_status_is_the_protos_word_in_lower_case() -> None:
    for value in pb.ExecutionStatus.values():
        e = execution_of(_execution(value))
        word = pb.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_").lower()
        assert e.status == word and status_value(e.status) == value


@pytest.mark.parametrize(
    ("execution", "node"),
    [
        (pb.EXECUTION_STATUS_CANCELLED, NodeRunStatus.CANCELLED),
        (pb.EXECUTION_STATUS_TIMED_OUT, NodeRunStatus.TIMED_OUT),
        (pb.EXECUTION_STATUS_RUNNING, NodeRunStatus.RUNNING),
        (pb.EXECUTION_STATUS_FAILED, NodeRunStatus.RUNNING),
    ],
)
def test_a_stopped_executions_running_node_says_what_stopped_it(
    execution: int, node: NodeRunStatus
) -> None:
    run = pb.NodeRun(node_id="n", status=pb.NODE_RUN_STATUS_RUNNING)
    assert execution_of(_execution(execution, run)).node_runs[0].status is node


def test_items_per_port_and_the_order_of_the_api() -> None:
    runs = (
        pb.NodeRun(node_id="z", status=pb.NODE_RUN_STATUS_COMPLETED, output_item_count=2),
        pb.NodeRun(
            node_id="if",
            status=pb.NODE_RUN_STATUS_COMPLETED,
            output_item_count=0,
            port_item_counts={"true": 1, "false": 2},
        ),
        pb.NodeRun(node_id="a", status=pb.NODE_RUN_STATUS_SKIPPED),
    )
    e = execution_of(_execution(pb.EXECUTION_STATUS_COMPLETED, *runs))
    assert [(r.node_id, r.status, r.items) for r in e.node_runs] == [
        # A server without per-port counts: the main port's count.
        ("z", NodeRunStatus.COMPLETED, {"main": 2}),
        ("if", NodeRunStatus.COMPLETED, {"true": 1, "false": 2}),
        ("a", NodeRunStatus.SKIPPED, {}),
    ]
    assert e.status is ExecutionStatus.COMPLETED and e.status.terminal
