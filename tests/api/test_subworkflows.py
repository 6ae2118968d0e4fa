"""Sub-workflow references pinned at submit: recursively, inside inline
sub-workflows too, within the byte bound; the snapshot then says it is pinned."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from nodedrop.api.repository_sqlite import SqliteRepository
from nodedrop.api.subworkflows import SubworkflowPins, carries_pins
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.errors import InvalidArgument
from nodedrop.contract import Definition, settings_of
from nodedrop.engine import EngineConfig

TENANT = "tenant-a"


def _definition(document: dict[str, Any]) -> Definition:
    return Definition(document, orjson.dumps(document).decode(), settings_of(document))


def _calling(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "caller",
        "nodes": [{"id": "start", "type": "manual_trigger"}, node],
        "connections": [{"from": "start", "to": node["id"]}],
    }


def _call(params: dict[str, Any]) -> dict[str, Any]:
    return {"id": "call", "type": "execute_workflow", "parameters": params}


async def _stored(repo: SqliteRepository, document: dict[str, Any]) -> str:
    workflow_id = str(uuid.uuid4())
    await repo.create_workflow(
        TENANT, workflow_id, document["name"], orjson.dumps(document).decode()
    )
    return workflow_id


@pytest.fixture
async def pins(sqlite_repo: SqliteRepository) -> SubworkflowPins:
    await sqlite_repo.ensure_tenant(TENANT, "a")
    return SubworkflowPins(WorkflowCache(sqlite_repo), EngineConfig(), max_bytes=64 * 1024)


async def test_references_are_pinned_recursively_and_inside_inline_subworkflows(
    pins: SubworkflowPins, sqlite_repo: SqliteRepository
) -> None:
    leaf = await _stored(sqlite_repo, {**_calling({"id": "x", "type": "noop"}), "name": "leaf"})
    middle = await _stored(sqlite_repo, {**_calling(_call({"workflow_id": leaf})), "name": "mid"})
    inline = _calling(_call({"workflow_id": middle}))
    top = _definition(_calling(_call({"workflow": inline})))
    assert not carries_pins(top.document)
    pinned = await pins.pin(TENANT, top, "workflow")
    assert carries_pins(pinned.document) and orjson.loads(pinned.json) == pinned.document
    via_inline = pinned.document["nodes"][1]["parameters"]["workflow"]["nodes"][1]["parameters"]
    assert via_inline["workflow_id"] == middle and via_inline["workflow_version"] == 1
    deepest = via_inline["workflow"]["nodes"][1]["parameters"]
    assert deepest["workflow_id"] == leaf and deepest["workflow"]["name"] == "leaf"
    # Nothing to pin: the same definition comes back.
    plain = _definition(_calling({"id": "x", "type": "noop"}))
    assert await pins.pin(TENANT, plain, "workflow") is plain


async def test_a_named_version_is_pinned_and_an_unknown_one_is_refused(
    pins: SubworkflowPins, sqlite_repo: SqliteRepository
) -> None:
    child = await _stored(sqlite_repo, {**_calling({"id": "x", "type": "noop"}), "name": "c1"})
    await sqlite_repo.update_workflow(
        TENANT, child, "c2", orjson.dumps(_calling({"id": "y", "type": "noop"})).decode(), None
    )
    first = await pins.pin(
        TENANT, _definition(_calling(_call({"workflow_id": child, "workflow_version": 1}))), "wf"
    )
    assert first.document["nodes"][1]["parameters"]["workflow"]["name"] == "c1"
    with pytest.raises(InvalidArgument) as err:
        await pins.pin(
            TENANT,
            _definition(_calling(_call({"workflow_id": child, "workflow_version": 9}))),
            "wf",
        )
    assert err.value.violations[0].field == "wf.nodes[1].parameters.workflow_id"
    assert "version 9" in str(err.value)


async def test_the_pinned_definition_stays_within_the_byte_bound(
    sqlite_repo: SqliteRepository,
) -> None:
    await sqlite_repo.ensure_tenant(TENANT, "a")
    big = _calling(
        {"id": "x", "type": "set", "parameters": {"fields": {"s": "'" + "z" * 600 + "'"}}}
    )
    child = await _stored(sqlite_repo, {**big, "name": "big"})
    # Each call pins its own copy: five of them outgrow the bound.
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}]
    nodes += [
        {"id": f"c{i}", "type": "execute_workflow", "parameters": {"workflow_id": child}}
        for i in range(5)
    ]
    caller = {
        "name": "fan",
        "nodes": nodes,
        "connections": [{"from": "start", "to": f"c{i}"} for i in range(5)],
    }
    pins = SubworkflowPins(WorkflowCache(sqlite_repo), EngineConfig(), max_bytes=3000)
    with pytest.raises(InvalidArgument) as err:
        await pins.pin(TENANT, _definition(caller), "workflow")
    assert "exceeds 3000 bytes" in str(err.value)
    roomy = SubworkflowPins(WorkflowCache(sqlite_repo), EngineConfig(), max_bytes=10_000)
    assert carries_pins((await roomy.pin(TENANT, _definition(caller), "workflow")).document)
