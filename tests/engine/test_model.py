"""Public surface and JSON round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodedrop import engine
from nodedrop.engine import (
    ExecutionInfo,
    MemoryCheckpointStore,
    MemoryEventSink,
    Node,
    NodeRetry,
    ValidationError,
    Workflow,
    parse_workflow,
    run_workflow,
    workflow_to_dict,
)

WORKFLOWS = Path(__file__).parent.parent / "workflows"


def test_exports_match_all() -> None:
    public = {name for name in dir(engine) if not name.startswith("_")}
    modules = {n for n in public if type(getattr(engine, n)).__name__ == "module"}
    assert public - modules == set(engine.__all__)


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json"))[:12], ids=lambda p: p.stem)
def test_json_round_trip(path: Path) -> None:
    wf = parse_workflow(json.loads(path.read_text())["workflow"])
    assert parse_workflow(workflow_to_dict(wf)) == wf


async def test_run_refuses_a_workflow_with_shape_problems() -> None:
    wf = Workflow("w", (Node("t", "manual_trigger", retry=NodeRetry(0, 0)),))
    with pytest.raises(ValidationError):
        await run_workflow(
            wf,
            execution=ExecutionInfo("e"),
            trigger_data=None,
            sink=MemoryEventSink(),
            checkpoints=MemoryCheckpointStore(),
        )
