"""``nodedrop.client`` against the real services, each its own process (API,
scheduler, worker, events): execute and wait, events resumed across an events
service restart, a submission retried on UNAVAILABLE run once, workflows,
schedules and keys, and the errors every failure maps to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nodedrop.client import (
    Aborted,
    AsyncClient,
    Client,
    ExecutionStatus,
    InvalidArgument,
    NodeRunStatus,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from tests.client.system import ClientSystem, LosesFirstAnswer, client_system
from tests.helpers.ports import free_port

# Each test starts the whole system as processes: slow on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GREET = {
    "name": "greet",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "hello", "type": "set", "parameters": {"fields": {"msg": "'hi ' + json.who"}}},
        {"id": "big", "type": "if", "parameters": {"condition": "json.who == 'ann'"}},
    ],
    "connections": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "big"}],
}
# Long enough for the events service to be killed and restarted halfway.
STEPS = {
    "name": "steps",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "w1", "type": "wait", "parameters": {"seconds": 0.5}},
        {"id": "w2", "type": "wait", "parameters": {"seconds": 1.5}},
        {"id": "w3", "type": "wait", "parameters": {"seconds": 0.5}},
        {"id": "done", "type": "set", "parameters": {"fields": {"ok": "true"}}},
    ],
    "connections": [
        {"from": "start", "to": "w1"},
        {"from": "w1", "to": "w2"},
        {"from": "w2", "to": "w3"},
        {"from": "w3", "to": "done"},
    ],
}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def system(redis_url: str, redis_prefix: str, pg_dsn: str) -> AsyncIterator[ClientSystem]:
    async with client_system(redis_url, redis_prefix, pg_dsn) as s:
        yield s


def _client(system: ClientSystem, **kwargs: object) -> AsyncClient:
    return AsyncClient(
        system.api_address,
        api_key=system.key,
        events_address=system.events_address,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_execute_and_wait_async_and_sync(system: ClientSystem) -> None:
    async with _client(system) as client:
        submitted = await client.execute(GREET, input={"who": "ann"})
        assert submitted.idempotency_key and not submitted.deduplicated
        execution = await client.wait(submitted.execution_id, timeout_s=30)
        # Any node's items, page by page; the result holds the last node's.
        hello = await client.output(submitted.execution_id, "hello")
    assert execution.status is ExecutionStatus.COMPLETED and execution.succeeded
    assert hello == [{"who": "ann", "msg": "hi ann"}]
    assert execution.output("big") == [{"who": "ann", "msg": "hi ann"}]
    runs = {r.node_id: r for r in execution.node_runs}
    assert [r.node_id for r in execution.node_runs] == ["start", "hello", "big"]
    assert runs["big"].status is NodeRunStatus.COMPLETED
    assert runs["big"].items == {"true": 1, "false": 0}
    assert runs["hello"].duration is not None

    def blocking() -> tuple[str, ExecutionStatus, list[object]]:
        with Client(
            system.api_address, api_key=system.key, events_address=system.events_address
        ) as c:
            wf = c.create_workflow(GREET)
            s = c.execute(workflow_id=wf.id, input={"who": "bo"})
            events = [e.type for e in c.events(s.execution_id)]
            done = c.wait(s.execution_id, timeout_s=30)
            listed = [e.id for e in c.list_executions(workflow_id=wf.id)]
            assert listed == [s.execution_id]
            kind = done.trigger_kind
            by_kind = [e.id for e in c.list_executions(trigger_kinds=[kind], limit=50)]
            assert s.execution_id in by_kind
            others = [k for k in ("webhook", "schedule") if k != kind]
            assert s.execution_id not in [e.id for e in c.list_executions(trigger_kinds=others)]
            return events[-1], done.status, done.output("big")

    last, status, output = await asyncio.to_thread(blocking)
    assert (last, status) == ("execution_completed", ExecutionStatus.COMPLETED)
    assert output == [{"who": "bo", "msg": "hi bo"}]


async def test_events_resume_across_an_events_service_restart(system: ClientSystem) -> None:
    async with _client(system, stream_reconnects=20) as client:
        submitted = await client.execute(STEPS, mode="queue")
        sequences: list[int] = []
        types: list[str] = []
        restarted = False
        async for event in client.events(submitted.execution_id):
            sequences.append(event.sequence)
            types.append(event.type)
            if event.type == "node_started" and event.node_id == "w2" and not restarted:
                # Killed while w2 waits: its end and what follows happen while
                # no events service runs, and must come after the restart.
                await system.restart_events(down_s=0.5)
                restarted = True
        execution = await client.wait(submitted.execution_id, timeout_s=30)
    assert restarted
    # No gap, no duplicate, and the stream ended at the terminal event.
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert types[-1] == "execution_completed"
    assert types.count("node_completed") == 5
    assert execution.status is ExecutionStatus.COMPLETED


async def test_a_submission_retried_on_unavailable_runs_once(system: ClientSystem) -> None:
    api_port = int(system.api_address.rsplit(":", 1)[1])
    proxy = LosesFirstAnswer(api_port, min_request_bytes=4000)
    await proxy.start()
    try:
        # The trigger data makes the request one large write the proxy recognises.
        payload = {"who": "cy", "pad": "x" * 8000}
        async with AsyncClient(
            f"127.0.0.1:{proxy.port}", api_key=system.key, events_address=system.events_address
        ) as client:
            submitted = await client.execute(GREET, input=payload)
        assert proxy.cut
    finally:
        await proxy.close()
    # The first answer was lost after the API recorded the execution; the retry
    # carried the same key and got the same execution back.
    assert submitted.deduplicated
    async with _client(system) as client:
        listed = [e async for e in client.list_executions()]
        assert [e.id for e in listed] == [submitted.execution_id]
        assert listed[0].idempotency_key == submitted.idempotency_key
        done = await client.wait(submitted.execution_id, timeout_s=30)
    assert done.status is ExecutionStatus.COMPLETED


async def test_workflows_schedules_and_keys(system: ClientSystem) -> None:
    async with _client(system) as client:
        wf = await client.create_workflow(GREET)
        assert (wf.name, wf.version) == ("greet", 1)
        v2 = await client.update_workflow(wf.id, {**GREET, "name": "greet-2"}, expected_version=1)
        assert v2.version == 2
        with pytest.raises(Aborted):
            await client.update_workflow(wf.id, GREET, expected_version=1)
        assert [w.version async for w in client.workflow_versions(wf.id)] == [2, 1]
        assert (await client.get_workflow(wf.id, version=1)).name == "greet"
        assert (await client.get_workflow(wf.id)).definition["nodes"][1]["id"] == "hello"
        assert [w.id async for w in client.list_workflows(name_prefix="greet")] == [wf.id]
        assert await client.validate_workflow(GREET) == []
        problems = await client.validate_workflow({**GREET, "connections": [{"from": "x"}]})
        assert problems and all(p.path.startswith("workflow.connections[0]") for p in problems)

        schedule = await client.create_schedule("*/5 * * * *", workflow_id=wf.id, paused=True)
        assert schedule.paused and schedule.workflow_id == wf.id
        assert [s.id for s in await client.list_schedules()] == [schedule.id]
        resumed = await client.resume_schedule(schedule.id)
        assert not resumed.paused and resumed.next_fire is not None
        assert (await client.pause_schedule(schedule.id)).paused
        await client.delete_schedule(schedule.id)
        assert await client.list_schedules() == []

        created = await client.create_api_key("reader", scopes=["read"])
        assert created.secret.startswith("ndk_") and created.key.scopes == ("read",)
        assert created.key.id in {k.id for k in await client.list_api_keys()}
        async with _client(system) as admin:
            reader = AsyncClient(
                system.api_address, api_key=created.secret, events_address="127.0.0.1:1"
            )
            async with reader:
                with pytest.raises(PermissionDenied):
                    await reader.execute(GREET)
                assert (await admin.revoke_api_key(created.key.id)).revoked is not None
                with pytest.raises(Unauthenticated):
                    await reader.get_workflow(wf.id)
        await client.delete_workflow(wf.id)
        with pytest.raises(NotFound):
            await client.get_workflow(wf.id)


async def test_schedule_policies_get_and_trigger(system: ClientSystem) -> None:
    async with _client(system) as client:
        wf = await client.create_workflow(STEPS)
        created = await client.create_schedule(
            "0 3 * * *",
            workflow_id=wf.id,
            timezone="Europe/Paris",
            overlap="buffer_one",
            catch_up="run_last",
            catch_up_window_s=90,
            jitter_s=2.5,
        )
        policies = (created.overlap, created.catch_up, created.catch_up_window_s, created.jitter_s)
        assert policies == ("buffer_one", "run_last", 90.0, 2.5)
        assert created.timezone == "Europe/Paris" and created.last_run is None
        with pytest.raises(ValueError, match="overlap must be skip, allow or buffer_one"):
            await client.create_schedule("0 3 * * *", workflow_id=wf.id, overlap="queue")
        with pytest.raises(InvalidArgument):
            await client.create_schedule("0 3 * * *", workflow_id=wf.id, jitter_s=-1)

        schedule, execution_id = await client.trigger_schedule(created.id)
        assert schedule.last_run is not None and schedule.last_run.execution_id == execution_id
        # A triggered run leaves the next tick where it was.
        assert schedule.next_fire == created.next_fire
        await client.wait(execution_id, timeout_s=30)

        def blocking() -> tuple[str, str | None, ExecutionStatus | None]:
            with Client(
                system.api_address, api_key=system.key, events_address=system.events_address
            ) as c:
                got = c.get_schedule(created.id)
                last = got.last_run
                assert last is not None
                return got.overlap, last.execution_id, last.status

        overlap, last_id, last_status = await asyncio.to_thread(blocking)
        assert (overlap, last_id) == ("buffer_one", execution_id)
        assert last_status is ExecutionStatus.COMPLETED
        with pytest.raises(NotFound):
            await client.get_schedule(UNKNOWN)
        with pytest.raises(NotFound):
            await client.trigger_schedule(UNKNOWN)


async def test_errors_map_to_one_hierarchy(system: ClientSystem) -> None:
    async with _client(system) as client:
        with pytest.raises(NotFound):
            await client.get_execution(UNKNOWN)
        with pytest.raises(InvalidArgument) as info:
            await client.create_workflow({"name": "bad", "nodes": [{"id": "n", "type": "nope"}]})
        assert info.value.violations and all(
            v.field.startswith("workflow.") for v in info.value.violations
        )
        with pytest.raises(InvalidArgument) as info:
            await client.get_execution("not an id!")
        assert [v.field for v in info.value.violations] == ["execution_id"]
        with pytest.raises(InvalidArgument):
            await anext(client.events("not an id!"))
        with pytest.raises(NotFound):
            await client.cancel(UNKNOWN)
    bogus = "ndk_000000000000_" + "A" * 43
    async with AsyncClient(system.api_address, api_key=bogus, events_address="x:1") as client:
        with pytest.raises(Unauthenticated):
            await client.get_execution(UNKNOWN)
    nobody = f"127.0.0.1:{free_port()}"
    async with AsyncClient(
        nobody, api_key=system.key, events_address=nobody, submit_attempts=2, timeout_s=2
    ) as client:
        with pytest.raises(Unavailable):
            await client.execute(GREET)
    with pytest.raises(Unauthenticated):
        AsyncClient(system.api_address, api_key="", events_address="x:1", config=None)
