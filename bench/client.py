"""Python client overhead: calls per second through ``nodedrop.client`` beside
the same calls on a bare gRPC stub over the same kind of channel (the floor).

    .venv/bin/python bench/client.py [--calls 2000] [--rounds 3]

Needs a running deployment (``make run``, or ``nodedrop dev``) and
NODEDROP_API_KEY, NODEDROP_API_ADDR as for the CLI. One caller, one call at a
time (a script's pattern): GetExecution of one finished execution with its
outputs (the client decodes them into dataclasses), and ExecuteWorkflow of a
stored workflow (the client adds an idempotency key). Each round runs the
bare stub, then ``AsyncClient``, then ``Client`` (the blocking one, on its
own event loop); every rate is printed with its ratio to the bare floor of
the same round.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the standard library module: drop the
# script's folder from the path first.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)

import argparse
import asyncio
import time

import orjson

from nodedrop.client import AsyncClient, Client, ClientConfig
from nodedrop.common.client import open_channel
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc

WORKFLOW = {
    "name": "bench-client",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
    ],
    "connections": [{"from": "start", "to": "tag"}],
}


async def _bare(
    config: ClientConfig, calls: int, execution_id: str, workflow_id: str
) -> tuple[float, float]:
    channel = open_channel(config.api_address, tls=config.tls)
    stub = ex_grpc.ExecutionServiceStub(channel)
    md = (("authorization", f"Bearer {config.api_key}"),)
    get = ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=True)
    run = ex_pb.ExecuteWorkflowRequest(
        workflow_id=workflow_id, trigger_data_json=orjson.dumps({"n": 1}).decode()
    )
    try:
        started = time.perf_counter()
        for _ in range(calls):
            await stub.GetExecution(get, metadata=md, timeout=30)
        reads = calls / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(calls):
            await stub.ExecuteWorkflow(run, metadata=md, timeout=30)
        writes = calls / (time.perf_counter() - started)
    finally:
        await channel.close()
    return reads, writes


async def _async_client(
    config: ClientConfig, calls: int, execution_id: str, workflow_id: str
) -> tuple[float, float]:
    async with AsyncClient(config=config) as client:
        started = time.perf_counter()
        for _ in range(calls):
            await client.get_execution(execution_id)
        reads = calls / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(calls):
            await client.execute(workflow_id=workflow_id, input={"n": 1})
        writes = calls / (time.perf_counter() - started)
    return reads, writes


def _sync_client(
    config: ClientConfig, calls: int, execution_id: str, workflow_id: str
) -> tuple[float, float]:
    with Client(config=config) as client:
        started = time.perf_counter()
        for _ in range(calls):
            client.get_execution(execution_id)
        reads = calls / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(calls):
            client.execute(workflow_id=workflow_id, input={"n": 1})
        writes = calls / (time.perf_counter() - started)
    return reads, writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = ClientConfig.from_env()
    with Client(config=config) as client:
        workflow_id = client.create_workflow(WORKFLOW).id
        done = client.wait(client.execute(workflow_id=workflow_id, input={"n": 1}).execution_id)
    header = ("round", "caller", "GetExecution/s", "ratio", "Execute/s", "ratio")
    print("{:<6} {:<12} {:>15} {:>6} {:>10} {:>6}".format(*header))
    for r in range(1, args.rounds + 1):
        floor = asyncio.run(_bare(config, args.calls, done.id, workflow_id))
        rows = {
            "bare stub": floor,
            "AsyncClient": asyncio.run(_async_client(config, args.calls, done.id, workflow_id)),
            "Client": _sync_client(config, args.calls, done.id, workflow_id),
        }
        for name, (reads, writes) in rows.items():
            print(
                f"{r:<6} {name:<12} {reads:>15,.0f} {reads / floor[0]:>6.2f} "
                f"{writes:>10,.0f} {writes / floor[1]:>6.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
