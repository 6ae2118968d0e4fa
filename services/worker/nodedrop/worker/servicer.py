"""WorkerService: protobuf in and out, the consumer does the work."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from nodedrop.queue.v1 import worker_service_pb2 as pb
from nodedrop.queue.v1 import worker_service_pb2_grpc as pb_grpc
from nodedrop.runtime.consumer import Consumer


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(
        self,
        consumer: Callable[[], Consumer | None],
        worker_id: str,
        concurrency: int,
        drain: Callable[[float | None], None],
    ) -> None:
        self._consumer = consumer
        self._worker_id = worker_id
        self._concurrency = concurrency
        self._drain = drain

    async def GetWorkerStatus(
        self, request: pb.GetWorkerStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerStatusResponse:
        c = self._consumer()
        resp = pb.GetWorkerStatusResponse(worker_id=self._worker_id, concurrency=self._concurrency)
        if c is not None:
            n = c.counters()
            resp.consuming = n.consuming
            resp.draining = n.draining
            resp.active_jobs = n.active
            resp.completed_jobs = n.completed
            resp.failed_jobs = n.failed
            resp.fence_refusals = n.fence_refusals
        return resp

    async def DrainWorker(
        self, request: pb.DrainWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainWorkerResponse:
        grace: float | None = None
        if request.HasField("grace"):
            grace = request.grace.ToTimedelta().total_seconds()
            if grace < 0 or grace > 3600:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "grace must be within 0..3600 s"
                )
        c = self._consumer()
        active = c.counters().active if c is not None else 0
        self._drain(grace)
        return pb.DrainWorkerResponse(active_jobs=active)
