"""The executor: runs a workflow's nodes as their inputs resolve.

Synchronous nodes run inline on the caller's task (no task per node); only
asynchronous ones (wait, http_request, execute_workflow, or a node that needs
a retry delay or a timeout) get a task, bounded by ``max_parallel_nodes``.
Node-level events go to the sink; NODE_COMPLETED goes to the checkpoint store
together with the node's outputs.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from nodedrop.engine.budget import Budget, check_data_depth
from nodedrop.engine.cancel import CancelToken
from nodedrop.engine.config import EngineConfig
from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import ErrorInfo, LimitExceededError, NodeError, NodeTimeoutError
from nodedrop.engine.events import EngineEvent, EventType
from nodedrop.engine.model import MAIN, Items, NodeOutputs, OnError, Workflow
from nodedrop.engine.offload import run_node
from nodedrop.engine.plan import Plan, get_plan
from nodedrop.engine.ports import CheckpointStore, EventSink
from nodedrop.engine.results import ExecutionInfo, ExecutionResult, ExecutionStatus

_EMPTY: Items = []

_PENDING, _RUNNING, _DONE, _SKIPPED, _ITERATING = range(5)


class _Failed(Exception):
    def __init__(self, info: ErrorInfo, status: ExecutionStatus) -> None:
        super().__init__(info.message)
        self.info = info
        self.status = status


class _TimedOut(Exception):
    """The execution's deadline passed."""


class _Stopped(Exception):
    """The cancel token was set while the run did not wait on a node task."""


class _LoopState:
    __slots__ = ("collected", "items", "iterations", "pos")

    def __init__(self, items: Items) -> None:
        self.items = items
        self.pos = 0
        self.collected: Items = []
        self.iterations = 0


async def run_workflow(
    workflow: Workflow,
    *,
    execution: ExecutionInfo,
    trigger_data: Any,
    sink: EventSink,
    checkpoints: CheckpointStore,
    completed: Mapping[str, NodeOutputs] | None = None,
    cancel: CancelToken | asyncio.Event | None = None,
    timeout_s: float | None = None,
    config: EngineConfig | None = None,
    depth: int = 0,
) -> ExecutionResult:
    """Run ``workflow`` to its end and say how it ended.

    Nodes in ``completed`` are not run again; their stored outputs feed their
    successors. ``timeout_s`` defaults to the workflow's settings. Raises
    ValidationError if the workflow is invalid; every other failure is in the
    result.
    """
    cfg = config if config is not None else _default_config()
    plan = get_plan(workflow, cfg.registry, cfg.limits)
    limit = timeout_s if timeout_s is not None else workflow.settings.timeout_s
    try:
        if isinstance(trigger_data, list) and len(trigger_data) >= cfg.offload_items:
            # A walk of many items is long: on a thread the loop keeps serving.
            await asyncio.to_thread(check_data_depth, trigger_data, cfg.limits, "the trigger data")
        else:
            check_data_depth(trigger_data, cfg.limits, "the trigger data")
    except LimitExceededError as exc:
        return ExecutionResult(ExecutionStatus.FAILED, {}, exc.info, ())
    token, watcher = _token(cancel)
    run = _Run(plan, execution, trigger_data, sink, checkpoints, completed or {}, cfg, token, depth)
    task = asyncio.current_task()
    assert task is not None

    removers: list[Callable[[], None]] = []

    def interrupt() -> None:
        task.cancel()

    def arm() -> None:
        # Only a run that waits on node tasks is interrupted through its task; one
        # of inline nodes only checks the token between nodes, so it may run on a
        # task shared with other work (the worker runs batches of them inline).
        if token is not None and not removers:
            removers.append(token.add_callback(interrupt))

    run.arm = arm
    status = ExecutionStatus.COMPLETED
    error: ErrorInfo | None = None
    try:
        await run.run(asyncio.get_running_loop().time() + limit)
    except _Stopped:
        assert token is not None
        status = ExecutionStatus.CANCELLED
        error = ErrorInfo(token.reason or "cancelled", "cancelled", None, retryable=False)
    except _TimedOut:
        status = ExecutionStatus.TIMED_OUT
        error = ErrorInfo(
            f"execution timed out after {limit:g}s", "execution_timeout", None, retryable=False
        )
    except asyncio.CancelledError:
        if token is None or not token.cancelled:
            raise
        task.uncancel()
        status = ExecutionStatus.CANCELLED
        error = ErrorInfo(token.reason or "cancelled", "cancelled", None, retryable=False)
    except _Failed as exc:
        status, error = exc.status, exc.info
    finally:
        for remove in removers:
            remove()
        if watcher is not None:
            watcher.cancel()
    if status is ExecutionStatus.COMPLETED:
        return ExecutionResult(status, run.terminal_outputs(), None, tuple(run.skipped))
    return ExecutionResult(status, {}, error, tuple(run.skipped))


_CONFIG: EngineConfig | None = None


def _default_config() -> EngineConfig:
    global _CONFIG  # noqa: PLW0603 - one shared default, built on first use
    if _CONFIG is None:
        _CONFIG = EngineConfig()
    return _CONFIG


def _token(cancel: CancelToken | asyncio.Event | None) -> tuple[CancelToken | None, Any]:
    if cancel is None or isinstance(cancel, CancelToken):
        return cancel, None
    token = CancelToken()
    event = cancel

    async def watch() -> None:
        await event.wait()
        token.cancel("cancelled")

    return token, asyncio.ensure_future(watch())


class _Run:
    def __init__(  # noqa: PLR0917 - private, called once
        self,
        plan: Plan,
        info: ExecutionInfo,
        trigger: Any,
        sink: EventSink,
        checkpoints: CheckpointStore,
        completed: Mapping[str, NodeOutputs],
        config: EngineConfig,
        token: CancelToken | None,
        depth: int,
    ) -> None:
        self.plan = plan
        self.info = info
        self.trigger = trigger
        self.sink = sink
        self.checkpoints = checkpoints
        self.config = config
        self.token = token
        self.depth = depth
        n = len(plan.ids)
        self.status = [_PENDING] * n
        self.pending = [len(s) for s in plan.in_slots]
        self.slots: list[Items | None] = [None] * plan.n_slots
        self.outputs: list[NodeOutputs | None] = [None] * n
        self.taken = [False] * n
        self.unresolved = [len(b) for b in plan.body]
        self.loops: dict[int, _LoopState] = {}
        self.nodes_main: dict[str, Items] = {}
        self.skipped: list[str] = []
        self.ready: deque[int] = deque()
        self.tasks: dict[asyncio.Task[NodeOutputs], int] = {}
        self.sem = asyncio.Semaphore(config.max_parallel_nodes)
        self.execution_var = info.as_variable(plan.workflow.name)
        self.arm: Callable[[], None] = _no_arm
        self.completed = self._usable_checkpoints(completed)
        self.budget = Budget(config.limits)
        # The execution's deadline on time.monotonic(), for nodes' expressions.
        self.deadline = float("inf")

    def _usable_checkpoints(self, completed: Mapping[str, NodeOutputs]) -> dict[int, NodeOutputs]:
        """Checkpoints to reuse. A loop's body ran many times; unless the loop
        finished, the loop and its body run again from the start."""
        plan = self.plan
        usable = {plan.index[k]: v for k, v in completed.items() if k in plan.index}
        for L, body in enumerate(plan.body):
            if plan.is_loop[L]:
                out = usable.get(L)
                if out is None or out.get("loop"):
                    usable.pop(L, None)
                    for b in body:
                        usable.pop(b, None)
        return usable

    # ---- main loop -----------------------------------------------------------------------

    async def run(self, deadline: float) -> None:
        """Runs to the end; raises _TimedOut once the loop clock passes ``deadline``.

        The deadline is checked after every node and bounds every wait, instead of
        one timer per run: most runs are inline nodes only and never suspend, and
        arming and cancelling a timer per run showed in a worker's profile
        (docs/benchmarks.md, Queue).
        """
        plan = self.plan
        clock = asyncio.get_running_loop().time
        self.deadline = deadline - clock() + time.monotonic()
        self.ready.append(plan.trigger)
        for i, p in enumerate(self.pending):
            if p == 0 and i != plan.trigger:
                self.ready.append(i)
        steps = 0
        token = self.token
        try:
            while True:
                while self.ready:
                    if token is not None and token.cancelled:
                        raise _Stopped
                    await self._start(self.ready.popleft())
                    steps += 1
                    if steps & 255 == 0:
                        # Inline nodes never suspend; yield now and then so that a
                        # cancellation can interrupt a long run of them (a loop
                        # over many batches).
                        await asyncio.sleep(0)
                    if clock() >= deadline:
                        raise _TimedOut
                if not self.tasks:
                    break
                left = deadline - clock()
                if left <= 0:
                    raise _TimedOut
                self.arm()
                done, _ = await asyncio.wait(
                    self.tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    raise _TimedOut
                for task in done:
                    i = self.tasks.pop(task)
                    outputs = task.result()
                    await self._complete(i, outputs)
        finally:
            if self.tasks:
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                self.tasks.clear()

    def _inputs(self, i: int) -> dict[str, Items]:
        slots = self.slots
        result: dict[str, Items] = {}
        for port, port_slots in self.plan.in_ports[i]:
            if len(port_slots) == 1:
                items = slots[port_slots[0]]
                result[port] = items if items is not None else _EMPTY
            else:
                merged: Items = []
                for s in port_slots:
                    got = slots[s]
                    if got:
                        merged.extend(got)
                result[port] = merged
        return result

    async def _start(self, i: int) -> None:
        plan = self.plan
        status = self.status[i]
        if status in (_DONE, _SKIPPED):
            return
        if status == _ITERATING:
            await self._loop_step(i)
            return
        if i != plan.trigger and not any(self.slots[s] for s in plan.in_slots[i]):
            await self._skip(i)
            return
        stored = self.completed.get(i)
        if stored is not None:
            self._restore(i, stored)
            return
        node = plan.nodes[i]
        inputs = self._inputs(i)
        if node.disabled:
            port = plan.first_output[i]
            items = [it for lst in inputs.values() for it in lst]
            await self._complete(i, {port: items} if port else {})
            return
        if plan.is_loop[i]:
            self.status[i] = _ITERATING
            self.loops[i] = _LoopState([it for lst in inputs.values() for it in lst])
            await self._loop_step(i)
            return
        self.status[i] = _RUNNING
        await self.sink.emit(EngineEvent(EventType.NODE_STARTED, node.id, time.time()))
        prepared = plan.prepared[i]
        if prepared.is_async or node.timeout_s is not None:
            self._spawn(i, inputs, first_try=1)
            return
        ctx = self._ctx(i)
        try:
            # Every node's inputs are some nodes' outputs: while none had many
            # items, no node is given many and counting them is skipped.
            if self.budget.largest >= self.config.offload_items:
                outputs = await run_node(prepared, inputs, ctx)
            else:
                outputs = prepared.run(inputs, ctx)  # type: ignore[assignment]
        except NodeError as exc:
            if isinstance(exc, NodeTimeoutError) and time.monotonic() >= self.deadline:
                raise _TimedOut from None
            if self.token is not None and self.token.cancelled:
                raise _Stopped from None
            if node.retry is not None and node.retry.max_tries > 1 and exc.retryable:
                self._spawn(i, inputs, first_try=2)
                return
            outputs = await self._failed(i, exc)
        except Exception as exc:  # a node's bug must fail the node, not the engine
            outputs = await self._failed(i, _internal(exc))
        await self._complete(i, outputs)

    def _ctx(self, i: int) -> NodeContext:
        """The context of one try of node ``i``: its expressions stop it at the
        execution's deadline or, when sooner, its own timeout_s from now."""
        node = self.plan.nodes[i]
        deadline = self.deadline
        own_timeout = None
        if node.timeout_s is not None:
            own = time.monotonic() + node.timeout_s
            if own < deadline:
                deadline, own_timeout = own, node.timeout_s
        return NodeContext(
            node,
            self.trigger,
            self.execution_var,
            self.info,
            self.nodes_main,
            self.config,
            self.token,
            self.depth,
            deadline,
            own_timeout,
        )

    def _spawn(self, i: int, inputs: dict[str, Items], first_try: int) -> None:
        task = asyncio.ensure_future(self._run_async(i, inputs, first_try))
        self.tasks[task] = i

    async def _run_async(self, i: int, inputs: dict[str, Items], first_try: int) -> NodeOutputs:
        node = self.plan.nodes[i]
        prepared = self.plan.prepared[i]
        tries = node.retry.max_tries if node.retry is not None else 1
        wait_s = node.retry.wait_s if node.retry is not None else 0.0
        attempt = first_try
        while True:
            if attempt > 1 and wait_s > 0:
                await asyncio.sleep(wait_s)
            ctx = self._ctx(i)
            try:
                async with self.sem:
                    if node.timeout_s is not None:
                        try:
                            async with asyncio.timeout(node.timeout_s):
                                result = await run_node(prepared, inputs, ctx)
                        except TimeoutError:
                            raise NodeTimeoutError(
                                f"node {node.id!r} timed out after {node.timeout_s:g}s"
                            ) from None
                    else:
                        result = await run_node(prepared, inputs, ctx)
                return result
            except NodeError as exc:
                if isinstance(exc, NodeTimeoutError) and time.monotonic() >= self.deadline:
                    raise _TimedOut from None
                if attempt >= tries or not exc.retryable:
                    return await self._failed(i, exc)
            except Exception as exc:  # a node's bug must fail the node, not the engine
                if attempt >= tries:
                    return await self._failed(i, _internal(exc))
            attempt += 1

    async def _failed(self, i: int, exc: NodeError) -> NodeOutputs:
        """Outputs for a failed node under on_error, or raise _Failed to end the run."""
        node = self.plan.nodes[i]
        exc.for_node(node.id)
        info = exc.info
        if node.on_error is OnError.FAIL:
            await self.sink.emit(
                EngineEvent(EventType.NODE_FAILED, node.id, time.time(), None, info)
            )
            status = (
                ExecutionStatus.TIMED_OUT
                if isinstance(exc, NodeTimeoutError)
                else ExecutionStatus.FAILED
            )
            raise _Failed(info, status)
        item = {"error": {"message": info.message, "node": node.id, "code": info.code}}
        port = MAIN if node.on_error is OnError.CONTINUE else "error"
        return {port: [item]}

    # ---- completion and propagation ------------------------------------------------------

    async def _complete(self, i: int, outputs: NodeOutputs) -> None:
        node_id = self.plan.ids[i]
        try:
            event = self.budget.completed(node_id, outputs)
        except LimitExceededError as exc:
            # Fails the run, or (on_error) gives one error item, well in budget.
            outputs = await self._failed(i, exc)
            event = self.budget.completed(node_id, outputs)
        await self.checkpoints.save(node_id, outputs, event)
        self._deliver(i, outputs)

    def _restore(self, i: int, outputs: NodeOutputs) -> None:
        plan = self.plan
        if plan.is_loop[i]:
            # A finished loop: its body ran; mark it resolved without running it.
            self._deliver(i, outputs, only="done")
            for b in sorted(plan.body[i]):
                stored = self.completed.get(b)
                self._resolve(b, _DONE if stored is not None else _SKIPPED)
                if stored is not None:
                    self.outputs[b] = stored
                    ports = (*plan.out[b], *plan.back_out[b])
                    self.taken[b] = any(stored.get(p) for p in ports)
                    if MAIN in stored:
                        self.nodes_main[plan.ids[b]] = stored[MAIN]
                for port, conns in plan.out[b].items():
                    items = stored.get(port, _EMPTY) if stored is not None else _EMPTY
                    for slot, t in conns:
                        if t in plan.body[i] or t == i:
                            continue
                        self._feed(slot, t, items)
            return
        self._deliver(i, outputs)

    def _feed(self, slot: int, target: int, items: Items) -> None:
        self.slots[slot] = items
        self.pending[target] -= 1
        if self.pending[target] == 0:
            self.ready.append(target)

    def _deliver(self, i: int, outputs: NodeOutputs, only: str | None = None) -> None:
        plan = self.plan
        self.outputs[i] = outputs
        main = outputs.get(MAIN)
        if main is not None:
            self.nodes_main[plan.ids[i]] = main
        out = plan.out[i]
        for port, items in outputs.items():
            if only is not None and port != only:
                continue
            conns = out.get(port)
            if conns is not None:
                if items:
                    self.taken[i] = True
                for slot, t in conns:
                    self._feed(slot, t, items)
            loops = plan.back_out[i].get(port)
            if loops is not None and items:
                self.taken[i] = True
                for L in loops:
                    state = self.loops.get(L)
                    if state is not None:
                        state.collected.extend(items)
        # Ports that emitted nothing still resolve their connections.
        for port, conns in out.items():
            if port in outputs or (only is not None and port != only):
                continue
            for slot, t in conns:
                self._feed(slot, t, _EMPTY)
        if only != "loop":
            self._resolve(i, _DONE)

    def _resolve(self, i: int, status: int) -> None:
        self.status[i] = status
        for L in self.plan.enclosing[i]:
            self.unresolved[L] -= 1
            if self.unresolved[L] == 0 and self.status[L] == _ITERATING:
                self.ready.append(L)

    async def _skip(self, i: int) -> None:
        plan = self.plan
        node_id = plan.ids[i]
        self.skipped.append(node_id)
        await self.sink.emit(EngineEvent(EventType.NODE_SKIPPED, node_id, time.time()))
        self.outputs[i] = None
        for conns in plan.out[i].values():
            for slot, t in conns:
                self._feed(slot, t, _EMPTY)
        self._resolve(i, _SKIPPED)

    # ---- loops -----------------------------------------------------------------------------

    async def _loop_step(self, L: int) -> None:
        plan = self.plan
        state = self.loops[L]
        batch_size, max_iterations = plan.loop_settings[L]
        node_id = plan.ids[L]
        while True:
            if state.pos >= len(state.items):
                await self._complete_loop(L, {"loop": [], "done": state.collected})
                return
            state.iterations += 1
            if state.iterations > max_iterations:
                exc = NodeError(
                    f"loop {node_id!r} exceeded max_iterations ({max_iterations})",
                    code="max_iterations",
                    retryable=False,
                )
                await self._complete_loop(L, await self._failed(L, exc))
                return
            batch = state.items[state.pos : state.pos + batch_size]
            state.pos += batch_size
            await self.sink.emit(EngineEvent(EventType.NODE_STARTED, node_id, time.time()))
            self._reset_body(L)
            outputs: NodeOutputs = {"loop": batch, "done": []}
            try:
                event = self.budget.completed(node_id, outputs)
            except LimitExceededError as exc:
                await self._complete_loop(L, await self._failed(L, exc))
                return
            await self.checkpoints.save(node_id, outputs, event)
            self._deliver(L, outputs, only="loop")
            if self.unresolved[L] > 0:
                return  # re-entered once every body node has resolved

    async def _complete_loop(self, L: int, outputs: NodeOutputs) -> None:
        self.loops.pop(L, None)
        node_id = self.plan.ids[L]
        try:
            event = self.budget.completed(node_id, outputs)
        except LimitExceededError as exc:
            outputs = await self._failed(L, exc)
            event = self.budget.completed(node_id, outputs)
        await self.checkpoints.save(node_id, outputs, event)
        self.outputs[L] = outputs
        only = "done" if "done" in outputs else None
        self._deliver(L, outputs, only=only)

    def _reset_body(self, L: int) -> None:
        plan = self.plan
        body = plan.body[L]
        for b in body:
            if self.status[b] in (_DONE, _SKIPPED):
                for E in plan.enclosing[b]:
                    self.unresolved[E] += 1
            self.status[b] = _PENDING
            self.loops.pop(b, None)
            count = 0
            for s in plan.in_slots[b]:
                src = plan.slot_source[s]
                if src == L or src in body:
                    self.slots[s] = None
                if self.slots[s] is None:
                    count += 1
            self.pending[b] = count

    # ---- result ----------------------------------------------------------------------------

    def terminal_outputs(self) -> dict[str, Items]:
        result: dict[str, Items] = {}
        for i, outputs in enumerate(self.outputs):
            if outputs is None or self.taken[i] or self.status[i] != _DONE:
                continue
            if MAIN in outputs:
                result[self.plan.ids[i]] = outputs[MAIN]
            else:
                result[self.plan.ids[i]] = [it for items in outputs.values() for it in items]
        return result


def _no_arm() -> None:
    return None


def _internal(exc: Exception) -> NodeError:
    return NodeError(f"internal error: {type(exc).__name__}: {exc}", code="internal_error")
