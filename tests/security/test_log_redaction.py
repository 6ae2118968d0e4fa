"""What services log when things go wrong, on real processes: no secret from
any setting, no caller's key, and no line longer than the bound, whatever the
failure (a database error while a key is checked, deeply nested or oversized
input). Secrets are planted in every setting that holds one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import orjson
import pytest

from nodedrop.api.model import Scope
from nodedrop.common.auth import bearer_metadata
from nodedrop.common.settings import DEFAULT_LOG_MAX_LINE_BYTES
from nodedrop.execution.v1 import execution_pb2, execution_service_pb2, execution_service_pb2_grpc
from nodedrop.gateway.example import example_workflow
from tests.helpers.services import ServiceProcess

from .perimeter_stack import Key, assert_clean, make_key, planted_env, running

ex = execution_service_pb2


@dataclass
class Stack:
    api: ServiceProcess
    scheduler: ServiceProcess
    worker: ServiceProcess
    key: Key

    def output(self) -> str:
        return self.api.output() + self.scheduler.output() + self.worker.output()


@pytest.fixture
async def stack(redis_url: str, redis_prefix: str, pg_dsn: str) -> AsyncIterator[Stack]:
    key = await make_key(pg_dsn, "tenant-log", Scope.EXECUTE, Scope.READ)
    env = planted_env(redis_url, redis_prefix, pg_dsn)
    env["LOG_LEVEL"] = "debug"
    async with (
        running("scheduler", env) as scheduler,
        running("worker", env) as worker,
        running("api", env) as api,
    ):
        yield Stack(api, scheduler, worker, key)


def _lines_within_bound(text: str) -> None:
    for line in text.splitlines():
        assert len(line.encode()) <= DEFAULT_LOG_MAX_LINE_BYTES, f"{len(line)} bytes: {line[:300]}"


async def test_database_error_while_checking_a_key_logs_no_key(stack: Stack, pg_dsn: str) -> None:
    # The key table goes away under the running API: the lookup fails with a
    # database error that is not "unavailable", the path that logged the
    # caller's key with the traceback's locals.
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute("ALTER TABLE api_keys RENAME TO api_keys_gone")
        fresh = await make_key_unsaved()
        async with grpc.aio.insecure_channel(stack.api.target) as channel:
            stub = execution_service_pb2_grpc.ExecutionServiceStub(channel)
            for credential in (stack.key.secret, fresh):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ListExecutions(
                        ex.ListExecutionsRequest(page_size=1),
                        metadata=bearer_metadata(credential),
                        timeout=5,
                    )
                got = (info.value.code(), info.value.details())
                assert got == (grpc.StatusCode.INTERNAL, "internal error"), (
                    got,
                    stack.api.output()[-3000:],
                )
    finally:
        await admin.execute("ALTER TABLE api_keys_gone RENAME TO api_keys")
        await admin.close()
    for _ in range(50):  # the line is written before the status; allow a busy machine
        if "unhandled error in rpc" in stack.api.output():
            break
        await asyncio.sleep(0.1)
    out = stack.api.output()
    assert "unhandled error in rpc" in out, out[-3000:]  # the failure was logged ...
    assert_clean(out, [stack.key.secret, fresh])  # ... without the key
    # The secret part alone (ndk_<12 hex id>_<secret>; the secret may itself hold "_").
    key_secret = stack.key.secret[len("ndk_") + 12 + 1 :]
    assert key_secret not in out


async def make_key_unsaved() -> str:
    from nodedrop.api.keys import generate_key  # noqa: PLC0415

    return generate_key().secret


@pytest.mark.timeout(120)
async def test_deeply_nested_and_oversized_triggers_keep_log_lines_bounded(stack: Stack) -> None:
    # A thousand levels: within what the API's JSON parser reads (1024), far
    # beyond what orjson writes (254). Built by hand for that reason.
    deep = "[" + '{"c":' * 999 + '{"leaf":1}' + "}" * 999 + "]"
    wide = orjson.dumps([{"blob": "y" * 900_000}]).decode()
    ids = []
    async with grpc.aio.insecure_channel(stack.api.target) as channel:
        stub = execution_service_pb2_grpc.ExecutionServiceStub(channel)
        for trigger in (deep, wide, deep, wide):
            try:
                reply = await stub.ExecuteWorkflow(
                    ex.ExecuteWorkflowRequest(
                        workflow=example_workflow(),
                        trigger_data_json=trigger,
                        trigger_kind=execution_pb2.TRIGGER_KIND_MANUAL,
                    ),
                    metadata=bearer_metadata(stack.key.secret),
                    timeout=10,
                )
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                ), exc
            else:
                ids.append(reply.execution_id)
        deadline = time.monotonic() + 60
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for execution_id in list(pending):
                got = await stub.GetExecution(
                    ex.GetExecutionRequest(execution_id=execution_id),
                    metadata=bearer_metadata(stack.key.secret),
                    timeout=5,
                )
                if got.execution.status >= execution_pb2.EXECUTION_STATUS_COMPLETED:
                    pending.discard(execution_id)
            await asyncio.sleep(0.5)
    out = stack.output()
    assert_clean(out, [stack.key.secret])
    _lines_within_bound(out)
    # Four requests, bounded lines: the whole log stays small.
    assert len(out.encode()) < 2_000_000, len(out.encode())
