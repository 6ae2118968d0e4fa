"""nodedrop-exec's side of the events scenario: EventService, 100 subscribers.

Runs the real `nodedrop events` and `nodedrop worker` processes. EventService
checks credentials through the API's AuthService; the API (and its
PostgreSQL) is not part of this measurement, so a stand-in AuthService in
this process accepts the bench key for tenant "bench" with the read scope
(EventService caches the answer, so it is called once per run).

Every subscriber holds a StreamEvents stream for the workflow; the worker runs
one-node executions whose five events (EXECUTION_QUEUED, EXECUTION_STARTED,
NODE_STARTED, NODE_COMPLETED, EXECUTION_COMPLETED) are the "progress events". Delivery
latency is the receive time minus the event's own time, which the store
stamps in whole milliseconds (so it reads up to 1 ms high).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
from _lifetime import die_with_parent

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.engine import WorkflowSettings as _Settings
from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.store import JobSpec
from nodedrop.store.redis_store import RedisStore

# The store keeps no execution-settings defaults: the engine's, once.
_SETTINGS = _Settings()
JOB_SETTINGS = {
    "max_attempts": _SETTINGS.max_attempts,
    "backoff_s": _SETTINGS.backoff_s,
    "timeout_s": _SETTINGS.timeout_s,
}

REPO = Path(__file__).resolve().parents[3]
KEY = "bench-events-key"
TENANT = "bench"
WORKFLOW_ID = "wf-events"
EVENTS_PER_EXECUTION = 5


class _StandInAuth(auth_service_pb2_grpc.AuthServiceServicer):
    async def Authenticate(
        self, request: auth_service_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.AuthenticateResponse:
        if request.credential != KEY:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bench key")
        return auth_service_pb2.AuthenticateResponse(
            tenant_id=TENANT, scopes=[auth_service_pb2.SCOPE_READ], key_id="bench"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_events(env: dict[str, str], api_addr: str, events_addr: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("nodedrop", path=str(REPO / ".venv" / "bin")) or "nodedrop"
    log = open(REPO / "bench" / "peers" / ".envs" / "worker.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [exe, "events"],
        env=dict(env, NODEDROP_API_ADDR=api_addr, NODEDROP_EVENTS_ADDR=events_addr),
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call (see _lifetime)
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class _Listener:
    """One subscriber: records the delivery latency of every event it gets."""

    def __init__(self, stub: event_service_pb2_grpc.EventServiceStub) -> None:
        self.latencies: list[float] = []
        self.completed_seen = 0
        self.first_emit = float("inf")
        self.last_delivery = 0.0
        self._call = stub.StreamEvents(
            event_service_pb2.StreamEventsRequest(workflow_id=WORKFLOW_ID),
            metadata=(("authorization", f"Bearer {KEY}"),),
        )
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        completed = event_pb2.EVENT_TYPE_EXECUTION_COMPLETED
        async for response in self._call:
            now = time.time()
            # A response carries every event that was ready for this stream.
            for event in response.events:
                emitted = event.time.seconds + event.time.nanos / 1e9
                self.latencies.append((now - emitted) * 1000.0)
                self.first_emit = min(self.first_emit, emitted)
                if event.type == completed:
                    self.completed_seen += 1
            self.last_delivery = now

    def reset(self) -> None:
        self.latencies.clear()
        self.completed_seen = 0
        self.first_emit = float("inf")

    def cancel(self) -> None:
        self._call.cancel()
        self.task.cancel()


async def _until(predicate: object, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.005)
    return False


async def run_events(
    *,
    store: RedisStore,
    worker_env: dict[str, str],
    start_worker: object,
    stop_worker: object,
    workflow_json: str,
    events: int,
    listeners: int,
    limit_s: float,
) -> dict[str, object]:
    """`events` is the number of events: events / 5 one-node executions."""
    api_addr = f"127.0.0.1:{_free_port()}"
    events_addr = f"127.0.0.1:{_free_port()}"
    auth = grpc.aio.server()
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(_StandInAuth(), auth)
    auth.add_insecure_port(api_addr)
    await auth.start()
    events_proc = _start_events(worker_env, api_addr, events_addr)
    worker = start_worker()  # type: ignore[operator]
    channel = grpc.aio.insecure_channel(events_addr)
    subs: list[_Listener] = []
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        subs = [_Listener(stub) for _ in range(listeners)]
        # Warm-up: one execution every subscriber sees end to end.
        warm_deadline = time.monotonic() + 30
        seen_warm = False
        run = os.urandom(3).hex()
        for attempt in range(20):
            spec = JobSpec(
                f"ev{run}-warm{attempt}",
                TENANT,
                WORKFLOW_ID,
                workflow_json,
                "",
                **JOB_SETTINGS,
            )
            await store.enqueue(spec, int(time.time() * 1000))
            if await _until(lambda: all(s.completed_seen for s in subs), time.monotonic() + 1.5):
                seen_warm = True
                break
            if time.monotonic() > warm_deadline:
                break
        if not seen_warm:
            ended = [s.task.exception() for s in subs if s.task.done()]
            raise RuntimeError(
                f"subscribers saw no warm-up execution within 30 s "
                f"({sum(len(s.latencies) for s in subs)} events seen; "
                f"{len(ended)} streams ended: {ended[:1]})"
            )
        await asyncio.sleep(0.2)
        for s in subs:
            s.reset()
        executions = max(1, events // EVENTS_PER_EXECUTION)
        specs = [
            JobSpec(
                f"ev{run}-{i}",
                TENANT,
                WORKFLOW_ID,
                workflow_json,
                "",
                **JOB_SETTINGS,
            )
            for i in range(executions)
        ]
        await store.enqueue_many(specs, int(time.time() * 1000))
        finished = await _until(
            lambda: all(s.completed_seen >= executions for s in subs),
            time.monotonic() + limit_s,
        )
        await asyncio.sleep(0.05)  # events after the last completion, if any
    finally:
        for s in subs:
            s.cancel()
        await channel.close()
        stop_worker(worker)  # type: ignore[operator]
        _stop(events_proc)
        await auth.stop(None)
    latencies = [x for s in subs for x in s.latencies]
    first = min((s.first_emit for s in subs), default=0.0)
    last = max((s.last_delivery for s in subs), default=0.0)
    per_listener = min((len(s.latencies) for s in subs), default=0)
    return {
        "jobs": per_listener * listeners,
        "completed": len(latencies),
        "finished": finished,
        "listeners": listeners,
        "events": per_listener,
        "executions": executions,
        "latencies_ms": latencies,
        "deliveries_per_s": len(latencies) / (last - first) if last > first else 0.0,
    }
