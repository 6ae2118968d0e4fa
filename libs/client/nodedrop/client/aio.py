"""``AsyncClient``: the one implementation of the client (``Client`` wraps it).

Every call carries the API key and a deadline; a failed call raises the
``nodedrop.common.errors`` type of its status. Two things are retried, both
safe to repeat: a submission that met UNAVAILABLE (sent again with the same
idempotency key, so the API runs it at most once), and an event stream that
broke before its execution ended (opened again after the last sequence
received, so no event is lost or repeated). Both wait with the project's one
back-off (``nodedrop.common.retry.Backoff``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf.duration_pb2 import Duration

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as admin_grpc
from nodedrop.auth.v1 import auth_service_pb2 as auth_pb
from nodedrop.auth.v1 import auth_service_pb2_grpc as auth_grpc
from nodedrop.client.config import ClientConfig
from nodedrop.client.convert import (
    api_key_of,
    event_of,
    execution_of,
    schedule_of,
    schedule_policies,
    status_of,
    status_value,
    trigger_kind_value,
    workflow_of,
    workflow_proto,
)
from nodedrop.client.errors import DeadlineExceeded, Unauthenticated, Unavailable, error_of
from nodedrop.client.types import (
    Activation,
    ApiKey,
    CreatedApiKey,
    Event,
    Execution,
    ExecutionStatus,
    FailedJob,
    LaneStats,
    Problem,
    QueueStats,
    Schedule,
    Submission,
    Workflow,
)
from nodedrop.common.retry import Backoff
from nodedrop.common.tls import TlsSettings
from nodedrop.event.v1 import event_service_pb2 as ev_pb
from nodedrop.event.v1 import event_service_pb2_grpc as ev_grpc
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_service_pb2 as wf_pb
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wf_grpc

__all__ = ["AsyncClient"]

T = TypeVar("T")

_MODES = {
    "queue": execution_pb2.EXECUTION_MODE_QUEUE,
    "direct": execution_pb2.EXECUTION_MODE_DIRECT,
}
_SCOPES = {"read": 1, "execute": 2, "admin": 3, "operator": 4}
# Statuses after which a new stream can bring nothing the old one could not:
# the request itself is wrong, or the caller may not see the execution.
_FINAL_STREAM_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


def _seconds(d: Duration) -> float:
    return float(d.ToNanoseconds()) / 1e9


# How long one attempt at an event stream waits for the events service to answer.
_CONNECT_TIMEOUT_S = 5.0


async def _ready(channel: grpc.aio.Channel) -> bool:
    """Whether the channel connects in time: a service that is down counts as a
    failed attempt after a while, rather than leaving a stream waiting forever."""
    try:
        await asyncio.wait_for(channel.channel_ready(), _CONNECT_TIMEOUT_S)
    except TimeoutError:
        return False
    return True


class AsyncClient:
    """A client of one nodedrop deployment; use it as ``async with AsyncClient() as client``.

    Values not given come from the environment (``ClientConfig.from_env``).
    Channels open at the first call, on the running event loop.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str | None = None,
        events_address: str | None = None,
        tls: TlsSettings | None = None,
        timeout_s: float = 30.0,
        submit_attempts: int = 8,
        stream_reconnects: int = 8,
        config: ClientConfig | None = None,
    ) -> None:
        if config is None and None in (address, api_key, events_address):
            config = ClientConfig.from_env()
        base = config or ClientConfig()
        self.config = ClientConfig(
            api_address=address or base.api_address,
            events_address=events_address or base.events_address,
            api_key=api_key or base.api_key,
            tls=tls or base.tls,
        )
        if not self.config.api_key:
            raise Unauthenticated(
                "no API key: pass api_key= or set NODEDROP_API_KEY (`nodedrop dev` prints one)"
            )
        if timeout_s <= 0 or submit_attempts < 1 or stream_reconnects < 0:
            raise ValueError("timeout_s > 0, submit_attempts >= 1, stream_reconnects >= 0")
        self._timeout_s = timeout_s
        self._submit_attempts = submit_attempts
        self._stream_reconnects = stream_reconnects
        self._metadata = (("authorization", f"Bearer {self.config.api_key}"),)
        self._api: grpc.aio.Channel | None = None
        self._events: grpc.aio.Channel | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in (self._api, self._events):
            if channel is not None:
                await channel.close()
        self._api = self._events = None

    # -- plumbing ---------------------------------------------------------

    def _channel(self, events: bool = False) -> grpc.aio.Channel:
        from nodedrop.common.client import open_channel  # noqa: PLC0415

        if events:
            if self._events is None:
                self._events = open_channel(self.config.events_address, tls=self.config.tls)
            return self._events
        if self._api is None:
            self._api = open_channel(self.config.api_address, tls=self.config.tls)
        return self._api

    @property
    def _ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self._channel())

    @property
    def _wf(self) -> wf_grpc.WorkflowServiceStub:
        return wf_grpc.WorkflowServiceStub(self._channel())

    @property
    def _admin(self) -> admin_grpc.QueueAdminServiceStub:
        return admin_grpc.QueueAdminServiceStub(self._channel())

    @property
    def _auth(self) -> auth_grpc.AuthServiceStub:
        return auth_grpc.AuthServiceStub(self._channel())

    @property
    def channel(self) -> grpc.aio.Channel:
        """The API's channel, for stubs of RPCs this client has no method for."""
        return self._channel()

    async def unary(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """Calls a unary stub method (of a stub on ``channel``) with the client's key,
        deadline and error mapping."""
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from None

    # -- executions -------------------------------------------------------

    async def execute(
        self,
        workflow: Mapping[str, Any] | None = None,
        *,
        workflow_id: str | None = None,
        version: int | None = None,
        input: Any = None,
        mode: str | None = None,
        priority: int = 0,
        delay_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submits an execution of an inline definition or of a stored workflow.

        Returns once the API has recorded it. An UNAVAILABLE answer is retried
        with the same idempotency key (one is made when not given), so a
        request the API took before the connection broke is not run twice.
        """
        if (workflow is None) == (workflow_id is None):
            raise ValueError("give a workflow definition or a workflow_id, not both")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        key = idempotency_key or f"client-{uuid.uuid4()}"
        request = ex_pb.ExecuteWorkflowRequest(
            trigger_data_json=orjson.dumps(input).decode() if input is not None else "",
            mode=_MODES[mode] if mode else execution_pb2.EXECUTION_MODE_UNSPECIFIED,
            priority=priority,
            idempotency_key=key,
        )
        if workflow is not None:
            request.workflow.CopyFrom(workflow_proto(workflow))
        else:
            request.workflow_id = workflow_id or ""
        if version is not None:
            request.workflow_version = version
        if delay_s is not None:
            delay = Duration()
            delay.FromNanoseconds(int(delay_s * 1e9))
            request.delay.CopyFrom(delay)
        backoff = Backoff(0.1, 2.0)
        while True:
            try:
                r = await self.unary(self._ex.ExecuteWorkflow, request)
            except Unavailable:
                if backoff.failures + 1 >= self._submit_attempts:
                    raise
                await backoff.wait()
                continue
            return Submission(r.execution_id, status_of(r.status), key, r.deduplicated)

    async def get_execution(self, execution_id: str, *, include_outputs: bool = True) -> Execution:
        r = await self.unary(
            self._ex.GetExecution,
            ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=include_outputs),
        )
        return execution_of(r.execution)

    async def wait(
        self, execution_id: str, *, timeout_s: float = 600.0, include_outputs: bool = True
    ) -> Execution:
        """The execution once its recorded status is terminal; DeadlineExceeded after ``timeout_s``.

        A read repeats safely, so an API that is briefly away is waited out too.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        outage = Backoff(0.1, 2.0)
        while True:
            try:
                execution = await self.get_execution(execution_id, include_outputs=include_outputs)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                await outage.wait()
                continue
            outage.reset()
            if execution.status.terminal:
                return execution
            if time.monotonic() > deadline:
                raise DeadlineExceeded(
                    f"execution {execution_id} is still {execution.status} after {timeout_s:g} s"
                )
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        statuses: Iterable[ExecutionStatus | str] = (),
        trigger_kinds: Iterable[str] = (),
        limit: int | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[Execution]:
        """Newest first, page after page, until ``limit`` (or the last one);
        ``trigger_kinds`` are words as ``Execution.trigger_kind`` gives them
        (``manual``, ``webhook``, ``schedule``, ...)."""
        wanted = [status_value(s) for s in statuses]
        kinds = [trigger_kind_value(k) for k in trigger_kinds]
        token = ""
        shown = 0
        while limit is None or shown < limit:
            size = page_size if limit is None else min(page_size, limit - shown)
            r = await self.unary(
                self._ex.ListExecutions,
                ex_pb.ListExecutionsRequest(
                    workflow_id=workflow_id or "",
                    statuses=wanted,  # type: ignore[arg-type]
                    trigger_kinds=kinds,  # type: ignore[arg-type]
                    page_size=size,
                    page_token=token,
                ),
            )
            for e in r.executions:
                yield execution_of(e)
                shown += 1
            token = r.next_page_token
            if not token:
                return

    async def cancel(self, execution_id: str, *, reason: str = "") -> ExecutionStatus:
        r = await self.unary(
            self._ex.CancelExecution,
            ex_pb.CancelExecutionRequest(execution_id=execution_id, reason=reason),
        )
        return status_of(r.status)

    async def retry(
        self, execution_id: str, *, from_start: bool = False, mode: str | None = None
    ) -> Submission:
        """A new execution of a failed, cancelled or timed-out one (from its failed node)."""
        request = ex_pb.RetryExecutionRequest(
            execution_id=execution_id,
            retry_from=ex_pb.RETRY_FROM_START if from_start else ex_pb.RETRY_FROM_FAILED_NODE,
        )
        if mode is not None:
            request.mode = _MODES[mode]
        r = await self.unary(self._ex.RetryExecution, request)
        return Submission(r.execution_id, status_of(r.status), "")

    async def output(self, execution_id: str, node_id: str, port: str = "main") -> list[Any]:
        """Every item one node sent out of one port, read page by page."""
        items: list[Any] = []
        token = ""
        while True:
            r = await self.unary(
                self._ex.GetExecutionOutput,
                ex_pb.GetExecutionOutputRequest(
                    execution_id=execution_id, node_id=node_id, port=port, page_token=token
                ),
            )
            page = orjson.loads(r.items_json) if r.items_json else []
            items.extend(page)
            token = r.next_page_token
            if not token:
                return items

    async def events(self, execution_id: str, *, after_sequence: int = 0) -> AsyncIterator[Event]:
        """The execution's events after ``after_sequence``, live, until its terminal event.

        A stream that breaks (UNAVAILABLE, the events service restarting) is
        opened again after the last sequence received: each event comes once,
        in order. Unavailable after ``stream_reconnects`` reconnects in a row
        that brought nothing new. The iteration ends without an event when the
        execution had ended by ``after_sequence``.
        """
        channel = self._channel(events=True)
        stub = ev_grpc.EventServiceStub(channel)
        last = after_sequence
        backoff = Backoff(0.2, 5.0)
        while True:
            progressed = False
            if await _ready(channel):
                call = stub.StreamExecutionEvents(
                    ev_pb.StreamExecutionEventsRequest(
                        execution_id=execution_id, after_sequence=last
                    ),
                    metadata=self._metadata,
                    # Keepalive on the channel finds a dead server; a stream has no deadline.
                    wait_for_ready=True,
                )
                try:
                    async for response in call:
                        for raw in response.events:
                            if raw.sequence <= last:
                                continue
                            event = event_of(raw)
                            last = event.sequence
                            progressed = True
                            yield event
                            if event.terminal:
                                return
                    # The service ends a stream only after the terminal event: a
                    # clean end with nothing new means it had ended by `last`.
                    if not progressed:
                        return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in _FINAL_STREAM_CODES:
                        raise error_of(exc) from None
                finally:
                    call.cancel()
            if progressed:
                backoff.reset()
            if backoff.failures >= self._stream_reconnects:
                raise Unavailable(
                    f"events of {execution_id}: gave up after {backoff.failures} reconnects "
                    f"without a new event (last sequence {last})"
                )
            await backoff.wait()

    # -- workflows --------------------------------------------------------

    async def create_workflow(self, definition: Mapping[str, Any]) -> Workflow:
        r = await self.unary(
            self._wf.CreateWorkflow,
            wf_pb.CreateWorkflowRequest(workflow=workflow_proto(definition)),
        )
        return workflow_of(r.workflow)

    async def get_workflow(self, workflow_id: str, *, version: int | None = None) -> Workflow:
        request = wf_pb.GetWorkflowRequest(workflow_id=workflow_id)
        if version is not None:
            request.version = version
        r = await self.unary(self._wf.GetWorkflow, request)
        return workflow_of(r.workflow)

    async def list_workflows(
        self, *, name_prefix: str = "", limit: int | None = None, page_size: int = 100
    ) -> AsyncIterator[Workflow]:
        """The latest version of each workflow."""
        token = ""
        shown = 0
        while limit is None or shown < limit:
            size = page_size if limit is None else min(page_size, limit - shown)
            r = await self.unary(
                self._wf.ListWorkflows,
                wf_pb.ListWorkflowsRequest(
                    name_prefix=name_prefix, page_size=size, page_token=token
                ),
            )
            for wf in r.workflows:
                yield workflow_of(wf)
                shown += 1
            token = r.next_page_token
            if not token:
                return

    async def update_workflow(
        self,
        workflow_id: str,
        definition: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Workflow:
        """Stores a new version; Aborted unless the latest is ``expected_version`` (if given)."""
        request = wf_pb.UpdateWorkflowRequest(
            workflow_id=workflow_id, workflow=workflow_proto(definition)
        )
        if expected_version is not None:
            request.expected_version = expected_version
        r = await self.unary(self._wf.UpdateWorkflow, request)
        return workflow_of(r.workflow)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.unary(
            self._wf.DeleteWorkflow, wf_pb.DeleteWorkflowRequest(workflow_id=workflow_id)
        )

    async def activate_workflow(
        self, workflow_id: str, *, version: int | None = None
    ) -> Activation:
        """Registers a version's triggers (the latest version unless given);
        a version already active is replaced."""
        request = wf_pb.ActivateWorkflowRequest(workflow_id=workflow_id)
        if version is not None:
            request.version = version
        r = await self.unary(self._wf.ActivateWorkflow, request)
        return Activation(workflow_of(r.workflow), tuple(r.webhook_paths), r.schedule_id or None)

    async def deactivate_workflow(self, workflow_id: str) -> None:
        await self.unary(
            self._wf.DeactivateWorkflow, wf_pb.DeactivateWorkflowRequest(workflow_id=workflow_id)
        )

    async def workflow_versions(self, workflow_id: str) -> AsyncIterator[Workflow]:
        token = ""
        while True:
            r = await self.unary(
                self._wf.ListWorkflowVersions,
                wf_pb.ListWorkflowVersionsRequest(workflow_id=workflow_id, page_token=token),
            )
            for wf in r.versions:
                yield workflow_of(wf)
            token = r.next_page_token
            if not token:
                return

    async def validate_workflow(self, definition: Mapping[str, Any]) -> list[Problem]:
        """Every problem the API finds in a definition (empty: valid)."""
        r = await self.unary(
            self._wf.ValidateWorkflow,
            wf_pb.ValidateWorkflowRequest(workflow=workflow_proto(definition)),
        )
        return [Problem(p.path, p.code, p.message) for p in r.problems]

    # -- schedules --------------------------------------------------------

    async def create_schedule(
        self,
        cron: str,
        *,
        workflow: Mapping[str, Any] | None = None,
        workflow_id: str | None = None,
        timezone: str = "",
        paused: bool = False,
        overlap: str = "skip",
        catch_up: str = "skip",
        catch_up_window_s: float = 0.0,
        jitter_s: float = 0.0,
    ) -> Schedule:
        """Runs a workflow at each tick of ``cron``; the policies are docs/workflows.md's
        (overlap: skip, allow, buffer_one; catch_up: skip, run_last)."""
        if (workflow is None) == (workflow_id is None):
            raise ValueError("give a workflow definition or a workflow_id, not both")
        overlap_value, catch_up_value = schedule_policies(overlap, catch_up)
        request = admin_pb.CreateScheduleRequest(
            cron=cron,
            timezone=timezone,
            paused=paused,
            overlap=overlap_value,
            catch_up=catch_up_value,
        )
        request.catch_up_window.FromMilliseconds(round(catch_up_window_s * 1000))
        request.jitter.FromMilliseconds(round(jitter_s * 1000))
        if workflow is not None:
            request.workflow.CopyFrom(workflow_proto(workflow))
        else:
            request.workflow_id = workflow_id or ""
        r = await self.unary(self._admin.CreateSchedule, request)
        return schedule_of(r.schedule)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        """A schedule with its next tick, policies and last run."""
        r = await self.unary(
            self._admin.GetSchedule, admin_pb.GetScheduleRequest(schedule_id=schedule_id)
        )
        return schedule_of(r.schedule)

    async def trigger_schedule(self, schedule_id: str) -> tuple[Schedule, str]:
        """Starts a run now, whatever the overlap policy: (the schedule, the run's
        execution id). The next tick is unchanged."""
        r = await self.unary(
            self._admin.TriggerSchedule, admin_pb.TriggerScheduleRequest(schedule_id=schedule_id)
        )
        return schedule_of(r.schedule), r.execution_id

    async def list_schedules(self) -> list[Schedule]:
        r = await self.unary(self._admin.ListSchedules, admin_pb.ListSchedulesRequest())
        return [schedule_of(s) for s in r.schedules]

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        r = await self.unary(
            self._admin.PauseSchedule, admin_pb.PauseScheduleRequest(schedule_id=schedule_id)
        )
        return schedule_of(r.schedule)

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        r = await self.unary(
            self._admin.ResumeSchedule, admin_pb.ResumeScheduleRequest(schedule_id=schedule_id)
        )
        return schedule_of(r.schedule)

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.unary(
            self._admin.DeleteSchedule, admin_pb.DeleteScheduleRequest(schedule_id=schedule_id)
        )

    # -- the queue (admin and operator keys) ------------------------------

    async def queue_stats(self) -> QueueStats:
        r = await self.unary(self._admin.GetQueueStats, admin_pb.GetQueueStatsRequest())
        s = r.stats
        whole = not r.tenant_id
        return QueueStats(
            tenant_id=r.tenant_id or None,
            waiting=s.waiting,
            active=s.active,
            delayed=s.delayed,
            failed=s.failed,
            completed=s.completed if whole else None,
            oldest_waiting_s=_seconds(s.oldest_waiting_age) if whole else None,
            partitions=s.partitions if whole else None,
            lanes=tuple(
                LaneStats(
                    lane.priority, lane.waiting, lane.oldest_waiting_age.ToNanoseconds() / 1e9
                )
                for lane in s.lanes
            )
            if whole
            else (),
        )

    async def failed_jobs(
        self, *, page_size: int = 50, page_token: str = ""
    ) -> tuple[list[FailedJob], str]:
        """One page of the failed queue, oldest failure first, and the next page's token."""
        r = await self.unary(
            self._admin.ListFailedJobs,
            admin_pb.ListFailedJobsRequest(page_size=page_size, page_token=page_token),
        )
        jobs = [
            FailedJob(
                execution_id=j.execution_id,
                tenant_id=j.tenant_id,
                workflow_id=j.workflow_id or None,
                attempts=j.attempts,
                reason=j.reason,
                node_id=j.node_id or None,
                failed=j.fail_time.ToDatetime() if j.fail_time.seconds else None,
            )
            for j in r.jobs
        ]
        return jobs, r.next_page_token

    async def retry_failed(self, execution_ids: Iterable[str] = (), *, all: bool = False) -> int:
        r = await self.unary(
            self._admin.RetryFailedJobs,
            admin_pb.RetryFailedJobsRequest(execution_ids=list(execution_ids), all=all),
        )
        return int(r.retried)

    async def purge_failed(self, execution_ids: Iterable[str] = (), *, all: bool = False) -> int:
        r = await self.unary(
            self._admin.PurgeFailedJobs,
            admin_pb.PurgeFailedJobsRequest(execution_ids=list(execution_ids), all=all),
        )
        return int(r.purged)

    # -- API keys ---------------------------------------------------------

    async def create_api_key(
        self, name: str, scopes: Iterable[str] = ("read", "execute")
    ) -> CreatedApiKey:
        """A new key of the caller's tenant (an admin key is needed); the secret is shown once."""
        try:
            values = [_SCOPES[s] for s in scopes]
        except KeyError as exc:
            raise ValueError(f"unknown scope {exc}; one of {', '.join(_SCOPES)}") from None
        r = await self.unary(
            self._auth.CreateApiKey,
            auth_pb.CreateApiKeyRequest(name=name, scopes=values),  # type: ignore[arg-type]
        )
        return CreatedApiKey(r.secret, api_key_of(r.api_key))

    async def list_api_keys(self) -> list[ApiKey]:
        r = await self.unary(self._auth.ListApiKeys, auth_pb.ListApiKeysRequest())
        return [api_key_of(k) for k in r.api_keys]

    async def revoke_api_key(self, api_key_id: str) -> ApiKey:
        r = await self.unary(
            self._auth.RevokeApiKey, auth_pb.RevokeApiKeyRequest(api_key_id=api_key_id)
        )
        return api_key_of(r.api_key)
