"""The soak's workload: six workflow kinds submitted through the API with
idempotency keys, a few cancelled, and watchers following executions by
sequence through the events service. Faults submit more of a kind when they
need one running at their moment (a seventh, long one only they submit).

Only built-in nodes (the API validates with them). The retrying kind fails
its first attempt with a retryable error and completes on the second: a
sub-workflow whose filter lets the item through only while
``execution.attempt < 2`` into an http_request to a name that never resolves
(``.invalid``), so no network is needed. The failing kind calls that name on
every attempt and ends in the failed queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson

from nodedrop.engine import parse_workflow
from nodedrop.engine.local import run_local

__all__ = ["KINDS", "Kind", "Submitted", "Submitter", "Watcher", "expected_outputs"]

_UNRESOLVABLE = "http://soak-unreachable.invalid/"


def _flaky_call(condition: str) -> dict[str, Any]:
    return {
        "name": "flaky-call",
        "nodes": [
            {"id": "in", "type": "manual_trigger"},
            {"id": "gate", "type": "filter", "parameters": {"condition": condition}},
            {"id": "call", "type": "http_request", "parameters": {"url": _UNRESOLVABLE}},
        ],
        "connections": [{"from": "in", "to": "gate"}, {"from": "gate", "to": "call"}],
    }


@dataclass(frozen=True)
class Kind:
    name: str
    document: dict[str, Any]
    # The status it must end in and the attempt it ends at.
    status: str
    final_attempt: int
    weight: int
    cancel: bool = False


_SETTINGS = {"max_attempts": 3, "backoff_s": 0.3, "timeout_s": 120}

KINDS: tuple[Kind, ...] = (
    Kind(
        "quick",
        {
            "name": "soak-quick",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "double", "type": "set", "parameters": {"fields": {"v": "json.n * 2"}}},
            ],
            "connections": [{"from": "start", "to": "double"}],
            "settings": _SETTINGS,
        },
        "completed",
        1,
        weight=4,
    ),
    Kind(
        "multi",
        {
            "name": "soak-multi",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "a", "type": "set", "parameters": {"fields": {"sq": "json.n * json.n"}}},
                {"id": "pause", "type": "wait", "parameters": {"seconds": 0.3}},
                {"id": "even", "type": "if", "parameters": {"condition": "json.n % 2 == 0"}},
                {"id": "yes", "type": "set", "parameters": {"fields": {"parity": "'even'"}}},
                {"id": "no", "type": "set", "parameters": {"fields": {"parity": "'odd'"}}},
                {"id": "join", "type": "merge", "parameters": {"mode": "append"}},
                {
                    "id": "final",
                    "type": "set",
                    "parameters": {"fields": {"tag": "json.parity + '-' + string(json.sq)"}},
                },
            ],
            "connections": [
                {"from": "start", "to": "a"},
                {"from": "a", "to": "pause"},
                {"from": "pause", "to": "even"},
                {"from": "even", "output": "true", "to": "yes"},
                {"from": "even", "output": "false", "to": "no"},
                {"from": "yes", "to": "join", "input": "a"},
                {"from": "no", "to": "join", "input": "b"},
                {"from": "join", "to": "final"},
            ],
            "settings": _SETTINGS,
        },
        "completed",
        1,
        weight=3,
    ),
    Kind(
        "retrying",
        {
            "name": "soak-retrying",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "done", "type": "set", "parameters": {"fields": {"ok": "true"}}},
                {
                    "id": "flaky",
                    "type": "execute_workflow",
                    "parameters": {"workflow": _flaky_call("execution.attempt < 2")},
                },
            ],
            "connections": [{"from": "start", "to": "done"}, {"from": "start", "to": "flaky"}],
            # A retry due 2 s later: the wipe finds several of them between their
            # attempts, which recovery must resume at attempt 2.
            "settings": {**_SETTINGS, "backoff_s": 2.0},
        },
        "completed",
        2,
        weight=2,
    ),
    Kind(
        "failing",
        {
            "name": "soak-failing",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {
                    "id": "flaky",
                    "type": "execute_workflow",
                    "parameters": {"workflow": _flaky_call("true")},
                },
            ],
            "connections": [{"from": "start", "to": "flaky"}],
            "settings": _SETTINGS,
        },
        "failed",
        3,
        weight=1,
    ),
    Kind(
        "waiting",
        {
            "name": "soak-waiting",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": "double(json.n % 3) + 1.0"}},
                # The end follows a checkpoint closely: a drain's last end then
                # finds that checkpoint's commit round still crossing the slow
                # link and needs a round of its own after the drain began.
                {"id": "tail", "type": "wait", "parameters": {"seconds": 0.2}},
                {"id": "done", "type": "set", "parameters": {"fields": {"waited": "true"}}},
            ],
            "connections": [
                {"from": "start", "to": "w"},
                {"from": "w", "to": "tail"},
                {"from": "tail", "to": "done"},
            ],
            "settings": _SETTINGS,
        },
        "completed",
        1,
        weight=3,
    ),
    # Never drawn at random: the paused-worker fault submits it so that the paused
    # worker holds a delivery that outlives the lease and runs long enough on the
    # worker the reclaimer hands it to (see faults.py, _stop_worker).
    Kind(
        "held",
        {
            "name": "soak-held",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": 4.0}},
                {"id": "done", "type": "set", "parameters": {"fields": {"held": "json.n"}}},
            ],
            "connections": [{"from": "start", "to": "w"}, {"from": "w", "to": "done"}],
            "settings": _SETTINGS,
        },
        "completed",
        1,
        weight=0,
    ),
    Kind(
        "cancelled",
        {
            "name": "soak-cancelled",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                # Outlasts a cancel sent 0.5-1.5 s after the submission; one whose
                # cancel went with the wiped Redis runs to the end, and the settle
                # waits for it.
                {"id": "w", "type": "wait", "parameters": {"seconds": 10}},
                {"id": "done", "type": "set", "parameters": {"fields": {"late": "true"}}},
            ],
            "connections": [{"from": "start", "to": "w"}, {"from": "w", "to": "done"}],
            "settings": _SETTINGS,
        },
        "cancelled",
        1,
        weight=1,
        cancel=True,
    ),
)
BY_NAME = {k.name: k for k in KINDS}


async def expected_outputs(kind: Kind, n: int) -> Any:
    """What a completed run of ``kind`` must output, from the engine run in process."""
    run = await run_local(
        parse_workflow(kind.document), {"n": n}, attempt=kind.final_attempt, timeout_s=30
    )
    assert run.result.ok, (kind.name, run.result.error)
    return orjson.loads(orjson.dumps(run.result.outputs))


@dataclass
class Submitted:
    key: str
    kind: str
    n: int
    execution_id: str
    cancel_acked: bool = False
    cancel_time: float = 0.0  # wall clock, when the cancel was acknowledged


@dataclass
class Submitter:
    """Submits at ``rate_per_s`` until stopped; retries a submission with the same
    idempotency key while the API is unavailable (bounded)."""

    target: str
    api_key: str
    rng: random.Random
    rate_per_s: float
    submitted: list[Submitted] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)
    key_conflicts: list[str] = field(default_factory=list)
    unacknowledged: int = 0
    retried_calls: int = 0
    _protos: dict[str, Any] = field(default_factory=dict)
    _stub: Any = None
    _seq: int = 0

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def _workflow(self, kind: Kind) -> Any:
        from nodedrop.contract import to_proto  # noqa: PLC0415

        if kind.name not in self._protos:
            self._protos[kind.name] = to_proto(kind.document)
        return self._protos[kind.name]

    async def run(self, stop: asyncio.Event, max_count: int) -> None:
        from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc  # noqa: PLC0415

        weights = [k.weight for k in KINDS]
        pending: set[asyncio.Task[Submitted | None]] = set()
        async with grpc.aio.insecure_channel(self.target) as channel:
            self._stub = ex_grpc.ExecutionServiceStub(channel)
            next_at = time.monotonic()
            for _ in range(max_count):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
                if stop.is_set():
                    break
                next_at += 1.0 / self.rate_per_s
                kind = self.rng.choices(KINDS, weights)[0]
                t = asyncio.create_task(self.submit(kind, self.rng.randrange(1, 1000)))
                pending.add(t)
                t.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=60)
            self._stub = None

    async def submit(self, kind: Kind, n: int) -> Submitted | None:
        """One execution of ``kind`` through the API while ``run`` is running
        (None when it never was acknowledged)."""
        from nodedrop.execution.v1 import execution_pb2  # noqa: PLC0415
        from nodedrop.execution.v1 import execution_service_pb2 as ex  # noqa: PLC0415

        stub = self._stub
        if stub is None:
            return None
        self._seq += 1
        key = f"soak-{self._seq}-{self.rng.getrandbits(48):012x}"
        request = ex.ExecuteWorkflowRequest(
            workflow=self._workflow(kind),
            trigger_data_json=orjson.dumps({"n": n}).decode(),
            mode=execution_pb2.EXECUTION_MODE_QUEUE,
            idempotency_key=key,
        )
        deadline = time.monotonic() + 30.0
        ids: set[str] = set()
        for _ in range(200):
            try:
                r = await stub.ExecuteWorkflow(request, metadata=self._metadata(), timeout=5.0)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                ):
                    raise
                if time.monotonic() > deadline:
                    self.unacknowledged += 1
                    return None
                self.retried_calls += 1
                await asyncio.sleep(0.25)
                continue
            ids.add(r.execution_id)
            # Ask once more with the same key: it must name the same execution.
            if len(ids) == 1 and self.rng.random() < 0.1:
                continue
            break
        if not ids:
            self.unacknowledged += 1
            return None
        if len(ids) > 1:
            self.key_conflicts.append(key)
        sub = Submitted(key, kind.name, n, sorted(ids)[0])
        self.by_key[key] = sub.execution_id
        self.submitted.append(sub)
        if kind.cancel:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))
            sub.cancel_acked = await self._cancel(stub, sub.execution_id)
            sub.cancel_time = time.time()
        return sub

    async def _cancel(self, stub: Any, execution_id: str) -> bool:
        from nodedrop.execution.v1 import execution_service_pb2 as ex  # noqa: PLC0415

        for _ in range(40):
            try:
                await stub.CancelExecution(
                    ex.CancelExecutionRequest(execution_id=execution_id),
                    metadata=self._metadata(),
                    timeout=5.0,
                )
                return True
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                    return False
                await asyncio.sleep(0.25)
        return False


@dataclass
class Watch:
    execution_id: str
    sequences: list[int] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    terminal: bool = False
    reconnects: int = 0
    # The events service said the resume point is past the end: the execution's
    # log was renumbered (Redis lost its data and the execution ran again).
    out_of_range: bool = False
    started_at: float = field(default_factory=time.time)


@dataclass
class Watcher:
    """Follows executions one after another through StreamExecutionEvents, resuming
    after the last sequence it saw whenever the stream breaks."""

    target: str
    api_key: str
    watches: list[Watch] = field(default_factory=list)

    async def follow(self, execution_id: str, deadline: float) -> Watch:
        from nodedrop.event.v1 import event_service_pb2 as ev  # noqa: PLC0415
        from nodedrop.event.v1 import event_service_pb2_grpc as ev_grpc  # noqa: PLC0415

        w = Watch(execution_id)
        self.watches.append(w)
        md = (("authorization", f"Bearer {self.api_key}"),)
        for _ in range(500):
            if w.terminal or time.monotonic() > deadline:
                break
            try:
                async with grpc.aio.insecure_channel(self.target) as channel:
                    stub = ev_grpc.EventServiceStub(channel)
                    last = w.sequences[-1] if w.sequences else 0
                    call = stub.StreamExecutionEvents(
                        ev.StreamExecutionEventsRequest(
                            execution_id=execution_id, after_sequence=last
                        ),
                        metadata=md,
                        timeout=max(1.0, deadline - time.monotonic()),
                    )
                    async for response in call:
                        for e in response.events:
                            w.sequences.append(int(e.sequence))
                            w.attempts.append(int(e.attempt))
                            if _terminal(e.type):
                                w.terminal = True
                    if not w.terminal:
                        w.reconnects += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    w.out_of_range = True
                    break
                w.reconnects += 1
                await asyncio.sleep(0.3)
        return w


def _terminal(event_type: int) -> bool:
    from nodedrop.event.v1 import event_pb2  # noqa: PLC0415

    return event_type in (
        event_pb2.EVENT_TYPE_EXECUTION_COMPLETED,
        event_pb2.EVENT_TYPE_EXECUTION_FAILED,
        event_pb2.EVENT_TYPE_EXECUTION_CANCELLED,
        event_pb2.EVENT_TYPE_EXECUTION_TIMED_OUT,
    )
