"""`nodedrop stats`, `failed` and `schedules` go through the API with an API
key: none, no answer; tenant A's admin key, A's jobs and schedules only; an
operator key, every tenant's. The scheduler and the API run as processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
import pytest

from nodedrop.admin.v1 import queue_admin_service_pb2 as apb
from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as apb_grpc
from nodedrop.api.model import Scope
from nodedrop.api.provisioning import create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.auth.v1 import auth_service_pb2 as auth_pb
from nodedrop.auth.v1 import auth_service_pb2_grpc as auth_grpc
from nodedrop.client.convert import workflow_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.store.redis_store import RedisStore
from tests.helpers.failed_jobs import fail_jobs
from tests.helpers.services import service_env, start_service
from tests.helpers.system import until

# Each CLI call is a Python process of its own (about a second on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORKFLOW = {
    "name": "nightly",
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "a", "type": "noop"}],
    "connections": [{"from": "start", "to": "a"}],
}


@dataclass
class Deployment:
    api_target: str
    admin_a: str
    admin_b: str
    read_a: str
    operator: str
    # Operator and admin of its own tenant: it may create keys, operator ones too.
    operator_admin: str


@pytest.fixture
async def deployment(
    env: dict[str, str], pg_dsn: str, store: RedisStore
) -> AsyncIterator[Deployment]:
    await fail_jobs(store, {"fail-a1": "tenant-a", "fail-a2": "tenant-a", "fail-b1": "tenant-b"})
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
    try:
        keys = [
            await create_key(repo, tenant, name, scopes)
            for tenant, name, scopes in (
                ("tenant-a", "a-admin", [Scope.ADMIN]),
                ("tenant-b", "b-admin", [Scope.ADMIN]),
                ("tenant-a", "a-read", [Scope.READ, Scope.EXECUTE]),
                ("ops", "operator", [Scope.OPERATOR]),
                ("ops", "operator-admin", [Scope.OPERATOR, Scope.ADMIN]),
            )
        ]
    finally:
        await repo.close()
    async with start_service("scheduler", env=env) as scheduler:
        api_env = {**env, "NODEDROP_SCHEDULER_ADDR": scheduler.target}
        # On the address the scheduler dials to start a schedule's runs.
        api_port = int(env["NODEDROP_API_ADDR"].rsplit(":", 1)[1])
        async with start_service("api", env=api_env, port=api_port) as api:
            yield Deployment(api.target, *(key.secret for key, _ in keys))


async def _cli(d: Deployment, key: str | None, *argv: str) -> tuple[int, str, str]:
    env = {"NODEDROP_API_ADDR": d.api_target, "NODEDROP_API_KEY": key or ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        *argv,
        env=service_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def _failed_ids(d: Deployment, key: str) -> set[str]:
    code, out, err = await _cli(d, key, "failed", "list", "--json")
    assert code == 0, err
    return {orjson.loads(line)["execution_id"] for line in out.splitlines()}


async def test_failed_queue_and_stats_by_tenant(deployment: Deployment, store: RedisStore) -> None:
    d = deployment
    # No key, or a key without the admin scope: nothing. (Independent CLI
    # runs go in parallel: each is a process of its own.)
    argvs = (("stats",), ("failed", "list"), ("failed", "purge", "--all"))
    refusals = await asyncio.gather(
        *(_cli(d, key, *argv) for key in (None, d.read_a) for argv in argvs)
    )
    for (code, out, err), expected in zip(
        refusals, ["NODEDROP_API_KEY"] * 3 + ["PERMISSION_DENIED"] * 3, strict=True
    ):
        assert code == 2 and expected in err and not out, (out, err)

    listed = await asyncio.gather(*(_failed_ids(d, k) for k in (d.admin_a, d.admin_b, d.operator)))
    assert listed == [{"fail-a1", "fail-a2"}, {"fail-b1"}, {"fail-a1", "fail-a2", "fail-b1"}]

    # One execution of A's waits in the queue (no worker runs here).
    async with grpc.aio.insecure_channel(d.api_target) as channel:
        await ex_grpc.ExecutionServiceStub(channel).ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(
                workflow=workflow_proto(WORKFLOW), mode=execution_pb2.EXECUTION_MODE_QUEUE
            ),
            metadata=(("authorization", f"Bearer {d.read_a}"),),
            timeout=10,
        )
    runs = await asyncio.gather(
        *(_cli(d, k, "stats", "--json") for k in (d.admin_a, d.admin_b, d.operator))
    )
    assert all(code == 0 for code, _, _ in runs), runs
    a, b, everyone = (orjson.loads(out) for _, out, _ in runs)
    assert (a["tenant_id"], a["waiting"], a["failed"]) == ("tenant-a", 1, 2)
    assert "partitions" not in a
    assert (b["tenant_id"], b["waiting"], b["failed"]) == ("tenant-b", 0, 1)
    assert (everyone["tenant_id"], everyone["failed"], everyone["partitions"]) == (None, 3, 4)

    # A's key cannot touch B's job, by id or with --all.
    others = await asyncio.gather(
        _cli(d, d.admin_a, "failed", "retry", "fail-b1"),
        _cli(d, d.admin_a, "failed", "purge", "fail-b1"),
    )
    assert [(code, out.strip()) for code, out, _ in others] == [(0, "retried 0"), (0, "purged 0")]
    code, out, _ = await _cli(d, d.admin_a, "failed", "retry", "fail-a1")
    assert (code, out.strip()) == (0, "retried 1")
    code, out, _ = await _cli(d, d.admin_a, "failed", "purge", "--all")
    assert (code, out.strip()) == (0, "purged 1")
    failed, _ = await store.list_failed(10, "")
    assert [j.execution_id for j in failed] == ["fail-b1"]
    # The operator reaches every tenant's.
    code, out, _ = await _cli(d, d.operator, "failed", "purge", "--all")
    assert (code, out.strip()) == (0, "purged 1")
    assert (await store.list_failed(10, ""))[0] == []


async def test_schedules_belong_to_the_key_s_tenant(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    wf_file = tmp_path / "wf.json"
    wf_file.write_bytes(orjson.dumps(WORKFLOW))
    code, _, err = await _cli(d, None, "schedules", "create", str(wf_file), "0 3 * * *")
    assert code == 2 and "NODEDROP_API_KEY" in err
    code, out, err = await _cli(
        d,
        d.admin_a,
        "schedules",
        "create",
        str(wf_file),
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--overlap",
        "buffer_one",
        "--catch-up",
        "run_last",
        "--catch-up-window",
        "600",
        "--jitter",
        "30",
        "--json",
    )
    assert code == 0, err
    created = orjson.loads(out)
    assert created["tenant_id"] == "tenant-a"
    assert (created["overlap"], created["catch_up"]) == ("buffer_one", "run_last")
    assert (created["catch_up_window_s"], created["jitter_s"]) == (600, 30)
    assert created["timezone"] == "Europe/Berlin" and created["last_run"] is None
    schedule_id = created["id"]
    code, _, err = await _cli(
        d, d.admin_a, "schedules", "create", str(wf_file), "0 3 * * *", "--catch-up", "run_last"
    )
    assert code == 2 and "catch_up_window" in err, err
    # Triggered now: an ordinary execution that carries its schedule.
    code, out, err = await _cli(d, d.admin_a, "schedules", "trigger", schedule_id)
    assert code == 0 and out.startswith("started "), err
    run_id = out.split()[1]
    code, out, err = await _cli(d, d.admin_a, "schedules", "show", schedule_id, "--json")
    assert code == 0, err
    assert orjson.loads(out)["last_run"]["execution_id"] == run_id
    code, out, err = await _cli(d, d.admin_a, "schedules", "show", schedule_id)
    assert code == 0 and f"last run  {run_id}" in out and "overlap buffer_one" in out, out

    async def shown() -> str | None:
        code, out, _ = await _cli(d, d.admin_a, "executions", "show", run_id)
        return out if code == 0 else None

    out = await until("the triggered run to be recorded", shown, 60, every_s=0.5)
    assert f"schedule  {schedule_id}" in out, out

    async def listed(key: str) -> list[dict[str, object]]:
        code, out, err = await _cli(d, key, "schedules", "list", "--json")
        assert code == 0, err
        return [orjson.loads(line) for line in out.splitlines()]

    seen = await asyncio.gather(*(listed(k) for k in (d.admin_a, d.admin_b, d.operator)))
    assert [[s["id"] for s in one] for one in seen] == [[schedule_id], [], [schedule_id]]
    # B cannot see, pause or delete A's schedule: it does not exist for B.
    runs = await asyncio.gather(
        *(
            _cli(d, d.admin_b, "schedules", a, schedule_id)
            for a in ("show", "pause", "resume", "trigger", "delete")
        )
    )
    for code, _, err in runs:
        assert code == 2 and "NOT_FOUND" in err, err
    assert [s["paused"] for s in await listed(d.admin_a)] == [False]
    code, out, err = await _cli(d, d.admin_a, "schedules", "pause", schedule_id)
    assert code == 0, err
    assert [s["paused"] for s in await listed(d.operator)] == [True]
    code, _, err = await _cli(d, d.operator, "schedules", "delete", schedule_id)
    assert code == 0, err
    assert await listed(d.admin_a) == []


async def test_only_an_operator_key_grants_the_operator_scope(deployment: Deployment) -> None:
    d = deployment
    request = auth_pb.CreateApiKeyRequest(name="escalate", scopes=[auth_pb.SCOPE_OPERATOR])
    async with grpc.aio.insecure_channel(d.api_target) as channel:
        auth = auth_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await auth.CreateApiKey(
                request, metadata=(("authorization", f"Bearer {d.admin_a}"),), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        granted = await auth.CreateApiKey(
            request, metadata=(("authorization", f"Bearer {d.operator_admin}"),), timeout=5
        )
        assert list(granted.api_key.scopes) == [auth_pb.SCOPE_OPERATOR]
        # The admin scope does not imply operator: A's admin key lists A's only.
        admin = apb_grpc.QueueAdminServiceStub(channel)
        mine = await admin.ListFailedJobs(
            apb.ListFailedJobsRequest(),
            metadata=(("authorization", f"Bearer {d.admin_a}"),),
            timeout=5,
        )
        assert {j.tenant_id for j in mine.jobs} == {"tenant-a"}
        # A ticket (it travels in URLs) administers nothing, an operator's neither.
        ticket = await auth.IssueTicket(
            auth_pb.IssueTicketRequest(),
            metadata=(("authorization", f"Bearer {d.operator_admin}"),),
            timeout=5,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await admin.ListFailedJobs(
                apb.ListFailedJobsRequest(),
                metadata=(("authorization", f"Bearer {ticket.ticket}"),),
                timeout=5,
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
