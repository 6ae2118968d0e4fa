"""`nodedrop dev` without Redis: scheduler and worker share one in-memory store."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson

from nodedrop.common.client import call
from nodedrop.common.server import GrpcServer
from nodedrop.common.settings import RedisSettings
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.queue.v1 import worker_service_pb2 as wpb
from nodedrop.queue.v1 import worker_service_pb2_grpc as wpb_grpc
from nodedrop.scheduler.app import create_service as create_scheduler
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.store import EventType
from nodedrop.store.memory import MemoryStore
from nodedrop.worker.app import create_service as create_worker
from nodedrop.worker.settings import WorkerSettings
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR, service_channel
from tests.worker.wq_processes import free_port


def _unset(redis: RedisSettings) -> RedisSettings:
    return dataclasses.replace(redis, url_set=False)


async def test_dev_mode_runs_queue_executions_in_memory() -> None:
    env = {
        # Nothing listens there, and (below) REDIS_URL counts as not set, as
        # if this were the default address: dev mode falls back to memory.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "NODEDROP_REDIS_PREFIX": f"dev{int(time.time() * 1000)}",
        "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0",
        "NODEDROP_WORKER_ADDR": "127.0.0.1:0",
        SERVICE_TOKEN_VAR: SERVICE_TOKEN,
    }
    s_settings = SchedulerSettings.from_env(env)
    s_settings = dataclasses.replace(s_settings, redis=_unset(s_settings.redis))
    w_settings = WorkerSettings.from_env(env)
    w_settings = dataclasses.replace(w_settings, redis=_unset(w_settings.redis))
    scheduler = create_scheduler(s_settings, dev=True)
    worker = create_worker(w_settings, dev=True)
    s_server = GrpcServer(scheduler, s_settings.server, security=s_settings.security)
    w_server = GrpcServer(worker, w_settings.server, security=w_settings.security)
    await s_server.start()
    await w_server.start()
    try:
        consumer = worker.consumer
        assert consumer is not None
        wf = wf_pb.Workflow(
            name="t",
            nodes=[wf_pb.Node(id="start", type="manual_trigger"), wf_pb.Node(id="a", type="noop")],
            connections=[wf_pb.Connection(source="start", target="a")],
        )
        async with service_channel(f"127.0.0.1:{s_server.port}") as channel:
            stub = pb_grpc.SchedulerServiceStub(channel)
            req = pb.EnqueueExecutionRequest(
                execution_id="dev-1", tenant_id="t1", workflow=wf, trigger_data_json='{"v": 1}'
            )
            assert (await call(stub.EnqueueExecution, req)).created
            deadline = time.monotonic() + 5
            while consumer.counters().completed < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            states = await call(
                stub.GetExecutionStates, pb.GetExecutionStatesRequest(execution_ids=["dev-1"])
            )
            assert states.states[0].known
        store = scheduler.store
        assert isinstance(store, MemoryStore)
        events = await store.read("dev-1", 0, 100)
        assert events[-1].type is EventType.EXECUTION_COMPLETED
        assert orjson.loads(events[-1].data_json) == {"a": [{"v": 1}]}
        async with service_channel(f"127.0.0.1:{w_server.port}") as channel:
            status = await wpb_grpc.WorkerServiceStub(channel).GetWorkerStatus(
                wpb.GetWorkerStatusRequest(), timeout=2
            )
            assert status.consuming and status.completed_jobs == 1
    finally:
        await w_server.stop(1)
        await s_server.stop(1)
