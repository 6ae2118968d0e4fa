"""The remote CLI commands against a real API (with a scheduler, a worker and
the events service, all in this process, on the shared Redis under this
test's prefix): `nodedrop workflows ...`, `nodedrop executions ...` and
`nodedrop run FILE|WORKFLOW_ID [--mode] [--follow] [--json]`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.cli.main import main
from nodedrop.common.server import GrpcServer
from nodedrop.events.app import EventsService
from nodedrop.events.settings import EventsSettings
from nodedrop.scheduler.app import SchedulerService
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.worker.app import WorkerService
from nodedrop.worker.settings import WorkerSettings
from tests.api.harness import RunningApi, api_settings, running_api
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR

WORKFLOW = {
    "name": "greet",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "hello", "type": "set", "parameters": {"fields": {"msg": "'hi ' + json.who"}}},
    ],
    "connections": [{"from": "start", "to": "hello"}],
}
SLOW = {
    "name": "slow",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pause", "type": "wait", "parameters": {"seconds": 30}},
    ],
    "connections": [{"from": "start", "to": "pause"}],
}


@contextlib.asynccontextmanager
async def _server(service: object, settings: object) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(
        service,  # type: ignore[arg-type]
        settings.server,  # type: ignore[attr-defined]
        security=settings.security,  # type: ignore[attr-defined]
    )
    await server.start()
    try:
        yield server
    finally:
        await server.set_not_serving()
        await server.stop(1.0)


@pytest.fixture
async def stack(
    pg_repo: PostgresRepository,
    redis_client: aioredis.Redis,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningApi]:
    base = {
        "REDIS_URL": redis_url,
        "NODEDROP_REDIS_PREFIX": redis_prefix,
        "NODEDROP_PARTITIONS": "4",
        "NODEDROP_READ_BLOCK_S": "0.1",
        "NODEDROP_WORKER_ADDR": "127.0.0.1:0",
        SERVICE_TOKEN_VAR: SERVICE_TOKEN,
    }
    sched_settings = SchedulerSettings.from_env({**base, "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0"})
    async with _server(SchedulerService(sched_settings), sched_settings) as sched:
        worker = WorkerService(WorkerSettings.from_env(base))
        await worker.start()
        settings = api_settings(
            redis_url, redis_prefix, {"NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{sched.port}"}
        )
        try:
            async with running_api(settings, pg_repo) as api:
                ev_settings = EventsSettings.from_env(
                    {**base, "NODEDROP_EVENTS_ADDR": "127.0.0.1:0", "NODEDROP_API_ADDR": api.target}
                )
                async with _server(EventsService(ev_settings), ev_settings) as events:
                    monkeypatch.setenv("NODEDROP_API_ADDR", api.target)
                    monkeypatch.setenv("NODEDROP_EVENTS_ADDR", f"127.0.0.1:{events.port}")
                    monkeypatch.setenv("NODEDROP_API_KEY", api.key)
                    yield api
        finally:
            await worker.stop()


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    # The services run in this process and log to the same streams.
    return code, _without_logs(out), _without_logs(err)


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _without_logs(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not _LOG_LINE.match(line))


@pytest.fixture
def wf_file(tmp_path: Path) -> Path:
    path = tmp_path / "greet.json"
    path.write_text(json.dumps(WORKFLOW))
    return path


async def test_workflows_commands(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], wf_file: Path, tmp_path: Path
) -> None:
    code, out, _ = await cli(capsys, "workflows", "create", str(wf_file), "--json")
    assert code == 0
    created = json.loads(out)
    wid = created["id"]
    assert created["version"] == 1 and created["name"] == "greet"
    code, out, _ = await cli(capsys, "workflows", "get", wid)
    assert code == 0 and json.loads(out)["nodes"][1]["id"] == "hello"
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({**WORKFLOW, "name": "greet-v2"}))
    code, out, _ = await cli(capsys, "workflows", "update", wid, str(v2), "--expected-version", "1")
    assert code == 0 and "version 2" in out
    code, _, err = await cli(capsys, "workflows", "update", wid, str(v2), "--expected-version", "1")
    assert code == 2 and "ABORTED" in err
    code, out, _ = await cli(capsys, "workflows", "get", wid, "--version", "1")
    assert json.loads(out)["name"] == "greet"
    code, out, _ = await cli(capsys, "workflows", "list", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [wid]
    code, out, _ = await cli(capsys, "workflows", "delete", wid)
    assert code == 0
    code, _, err = await cli(capsys, "workflows", "get", wid)
    assert code == 2 and "NOT_FOUND" in err


async def test_invalid_workflow_shows_each_field_violation(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "name": "bad",
                "nodes": [
                    {"id": "start", "type": "manual_trigger"},
                    {"id": "start", "type": "noop"},
                ],
                "connections": [{"from": "start", "to": "ghost"}],
            }
        )
    )
    code, _, err = await cli(capsys, "workflows", "create", str(bad))
    assert code == 2 and "INVALID_ARGUMENT" in err
    assert "workflow.connections[0].target" in err and "workflow.nodes[1]" in err


async def test_run_file_and_stored_workflow_in_both_modes(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], wf_file: Path
) -> None:
    for mode in ("queue", "direct"):
        code, out, _ = await cli(
            capsys, "run", str(wf_file), "--mode", mode, "--input", '{"who": "ann"}', "--json"
        )
        assert code == 0, out
        result = json.loads(out)
        assert result["status"] == "completed"
        assert result["outputs"] == {"hello": [{"who": "ann", "msg": "hi ann"}]}
    _, out, _ = await cli(capsys, "workflows", "create", str(wf_file), "--json")
    wid = json.loads(out)["id"]
    code, out, _ = await cli(capsys, "run", wid, "--input", '{"who": "bo"}')
    assert code == 0 and "completed" in out and "hi bo" in out


async def test_run_follow_prints_every_event(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], wf_file: Path
) -> None:
    code, out, _ = await cli(
        capsys, "run", str(wf_file), "--follow", "--input", '{"who": "cy"}', "--mode", "queue"
    )
    assert code == 0, out
    for kind in ("execution_queued", "execution_started", "node_completed", "execution_completed"):
        assert kind in out
    assert "hi cy" in out


async def test_executions_commands(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(SLOW))
    failing = tmp_path / "fail.json"
    failing.write_text(json.dumps(WORKFLOW))
    # No input: json.who is missing, the set node fails.
    code, out, _ = await cli(capsys, "run", str(failing), "--json")
    assert code == 1
    failed = json.loads(out)
    assert failed["status"] == "failed" and failed["error"]["node_id"] == "hello"
    code, out, _ = await cli(capsys, "executions", "show", failed["execution_id"])
    assert code == 0 and "failed" in out and "hello" in out
    # For scripts: the whole message, statuses spelt as everywhere else.
    code, out, _ = await cli(capsys, "executions", "show", failed["execution_id"], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "failed", shown
    assert shown["mode"] in ("direct", "queue") and shown["trigger_kind"] == "manual", shown
    assert {r["node_id"]: r["status"] for r in shown["node_runs"]}["hello"] == "failed", shown
    code, out, _ = await cli(capsys, "executions", "retry", failed["execution_id"])
    assert code == 0 and f"retry of {failed['execution_id']}" in out
    retry_id = out.split()[1]
    code, out, _ = await cli(capsys, "executions", "list", "--status", "failed", "--json")
    assert failed["execution_id"] in out
    # Start a slow one in the background of the API, then cancel it.
    submit = asyncio.create_task(cli(capsys, "run", str(slow), "--wait", "20"))
    # The background run prints to the same captured streams: keep JSON rows only.
    rows: list[dict[str, object]] = []
    for _ in range(200):
        _, out, _ = await cli(capsys, "executions", "list", "--status", "running", "--json")
        # The retry fails too, but may still be running here.
        rows = [
            row
            for line in out.splitlines()
            if line.startswith("{") and (row := json.loads(line))["id"] != retry_id
        ]
        if rows:
            break
        await asyncio.sleep(0.1)
    running_id = str(rows[0]["id"])
    code, out, _ = await cli(capsys, "executions", "cancel", running_id, "--reason", "enough")
    assert code == 0
    code, _, _ = await submit
    assert code == 1
    code, out, _ = await cli(capsys, "executions", "watch", running_id)
    assert "execution_cancelled" in out or "already ended" in out
    code, _, err = await cli(capsys, "executions", "show", "not an id")
    assert code == 2 and "execution_id" in err


async def test_no_key_is_a_clear_usage_error(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODEDROP_API_KEY")
    code, _, err = await cli(capsys, "executions", "list")
    assert code == 2 and "NODEDROP_API_KEY" in err
    monkeypatch.setenv("NODEDROP_API_KEY", "ndk_000000000000_" + "A" * 43)
    code, _, err = await cli(capsys, "executions", "list")
    assert code == 2 and "UNAUTHENTICATED" in err


async def test_run_of_neither_a_file_nor_an_id_is_a_usage_error(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = await cli(capsys, "run", str(tmp_path / "nope.json"))
    assert code == 2 and "no such file, and not a workflow id" in err
    code, _, err = await cli(capsys, "run", "00000000-0000-4000-8000-000000000000")
    assert code == 2 and "NOT_FOUND" in err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    code, _, err = await cli(capsys, "run", str(bad))
    assert code == 2 and "JSON object" in err


async def test_workflows_activate_and_deactivate(
    stack: RunningApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooked = tmp_path / "hooked.json"
    hooked.write_text(
        json.dumps(
            {
                "name": "hooked",
                "nodes": [
                    {"id": "hook", "type": "webhook_trigger", "parameters": {"path": "orders"}},
                    {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
                ],
                "connections": [{"from": "hook", "to": "tag"}],
            }
        )
    )
    _, out, _ = await cli(capsys, "workflows", "create", str(hooked), "--json")
    wid = json.loads(out)["id"]
    code, out, _ = await cli(capsys, "workflows", "activate", wid, "--version", "1")
    assert code == 0 and f"activated workflow {wid} version 1" in out
    assert "/webhook/tenant-a/orders" in out
    _, out, _ = await cli(capsys, "workflows", "list", "--json")
    assert json.loads(out)["active_version"] == 1
    _, out, _ = await cli(capsys, "workflows", "list")
    assert "active v1" in out
    code, out, _ = await cli(capsys, "workflows", "deactivate", wid)
    assert code == 0
    _, out, _ = await cli(capsys, "workflows", "list", "--json")
    assert json.loads(out)["active_version"] is None
    code, _, err = await cli(capsys, "workflows", "activate", wid, "--version", "7")
    assert code == 2 and "NOT_FOUND" in err


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_UPPER_STATUS = re.compile(r"\b(QUEUED|RUNNING|COMPLETED|FAILED|CANCELLED|TIMED_OUT)\b")


def _node_lines(out: str) -> dict[str, str]:
    """`executions show`'s node table, in the order printed: node id -> line."""
    return {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}


async def test_show_lists_nodes_in_execution_order_with_items_per_port(
    stack: RunningApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await cli(
        capsys,
        "run",
        str(EXAMPLES / "order_pipeline.json"),
        "--input",
        f"@{EXAMPLES / 'order_pipeline.input.json'}",
        "--json",
    )
    assert code == 0, out
    code, out, _ = await cli(capsys, "executions", "show", json.loads(out)["execution_id"])
    assert code == 0
    nodes = _node_lines(out)
    order = list(nodes)
    # The order they ran in (alphabetical would start with `all`, `big`, `by_region`).
    ran = ["orders", "valid", "price", "big", "by_region", "all", "summary"]
    assert [n for n in order if n in ran] == ran
    # An if node's items on each port, not "0 items".
    assert "false: 2, true: 1" in nodes["big"]
    assert "3 items" in nodes["valid"]
    # One spelling of statuses: the proto's, lower-case.
    assert "  completed  " in out.splitlines()[0]
    assert not _UPPER_STATUS.search(out)


async def test_a_cancelled_executions_running_node_shows_cancelled(
    stack: RunningApi, capsys: pytest.CaptureFixture[str]
) -> None:
    from nodedrop.client import AsyncClient, NodeRunStatus  # noqa: PLC0415

    async with AsyncClient(stack.target, api_key=stack.key, events_address="127.0.0.1:1") as c:
        submitted = await c.execute(SLOW, mode="queue")
        for _ in range(200):
            e = await c.get_execution(submitted.execution_id)
            if any(r.node_id == "pause" for r in e.node_runs):
                break
            await asyncio.sleep(0.05)
        await c.cancel(submitted.execution_id)
        done = await c.wait(submitted.execution_id, timeout_s=20)
    assert str(done.status) == "cancelled"
    assert {r.node_id: r.status for r in done.node_runs}["pause"] is NodeRunStatus.CANCELLED
    code, out, _ = await cli(capsys, "executions", "show", submitted.execution_id)
    assert code == 0
    assert " cancelled " in _node_lines(out)["pause"]
    assert "running" not in out


async def test_each_error_is_printed_once_with_its_code(
    stack: RunningApi, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for argv in (
        ("executions", "show", unknown),
        ("executions", "cancel", unknown),
        ("workflows", "get", unknown),
        ("run", unknown),
    ):
        code, out, err = await cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ": NOT_FOUND: " in lines[0], (argv, err)
    code, _, err = await cli(capsys, "executions", "show", "not an id")
    lines = err.strip().splitlines()
    assert code == 2 and lines[0].startswith("nodedrop executions: INVALID_ARGUMENT: ")
    # The code once, then one line per field violation.
    assert err.count("INVALID_ARGUMENT") == 1 and lines[1].startswith("  execution_id: ")


async def test_output_into_a_closed_pipe_ends_without_a_traceback(stack: RunningApi) -> None:
    # `nodedrop stats | head -1`: the reader is gone before the command writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nodedrop.cli.main",
            "stats",
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


async def _interrupted_run(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    """`nodedrop run SLOW --follow` interrupted by Ctrl-C once the execution is submitted."""
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(SLOW))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        "run",
        str(slow),
        "--follow",
        "--mode",
        "queue",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    match = re.match(rb"execution (\S+) submitted", first)
    assert match, first
    # Until the live view shows the node running, then Ctrl-C.
    while b"node_started" not in await asyncio.wait_for(process.stdout.readline(), 30):
        pass
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, match.group(1).decode(), err.decode()


async def test_ctrl_c_on_run_follow_says_the_execution_goes_on(
    stack: RunningApi, tmp_path: Path
) -> None:
    from nodedrop.client import AsyncClient  # noqa: PLC0415

    code, execution_id, err = await _interrupted_run(tmp_path)
    assert code == 130, err
    assert "goes on" in err and f"nodedrop executions cancel {execution_id}" in err, err
    assert "Traceback" not in err
    async with AsyncClient(stack.target, api_key=stack.key, events_address="127.0.0.1:1") as c:
        assert str((await c.get_execution(execution_id)).status) == "running"
        await c.cancel(execution_id)


async def test_ctrl_c_with_cancel_on_exit_cancels_the_execution(
    stack: RunningApi, tmp_path: Path
) -> None:
    from nodedrop.client import AsyncClient  # noqa: PLC0415

    code, execution_id, err = await _interrupted_run(tmp_path, "--cancel-on-exit")
    assert code == 130, err
    assert f"execution {execution_id} cancelled" in err, err
    async with AsyncClient(stack.target, api_key=stack.key, events_address="127.0.0.1:1") as c:
        done = await c.wait(execution_id, timeout_s=20)
    assert str(done.status) == "cancelled"
