"""The Python client of nodedrop-exec: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

    from nodedrop.client import Client

    with Client() as client:  # NODEDROP_API_ADDR, NODEDROP_API_KEY, NODEDROP_TLS_*
        submitted = client.execute(workflow, input={"order": 1})
        execution = client.wait(submitted.execution_id)
        print(execution.status, execution.output("total"))

docs/api.md, "Python client", describes every method.
"""

from nodedrop.client.aio import AsyncClient
from nodedrop.client.config import ClientConfig
from nodedrop.client.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NodedropError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    Unauthenticated,
    Unavailable,
)
from nodedrop.client.sync import Client
from nodedrop.client.types import (
    Activation,
    ApiKey,
    CreatedApiKey,
    ErrorInfo,
    Event,
    Execution,
    ExecutionStatus,
    FailedJob,
    LaneStats,
    NodeRun,
    NodeRunStatus,
    Problem,
    QueueStats,
    Schedule,
    ScheduleRun,
    Submission,
    Workflow,
)

__all__ = [
    "Aborted",
    "Activation",
    "AlreadyExists",
    "ApiKey",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "CreatedApiKey",
    "DeadlineExceeded",
    "ErrorInfo",
    "Event",
    "Execution",
    "ExecutionStatus",
    "FailedJob",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "LaneStats",
    "NodeRun",
    "NodeRunStatus",
    "NodedropError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Problem",
    "QueueStats",
    "ResourceExhausted",
    "Schedule",
    "ScheduleRun",
    "ServerError",
    "Submission",
    "Unauthenticated",
    "Unavailable",
    "Workflow",
]
