"""The plain routes (``/api/...``): each maps onto one exposed RPC.

Most are transcoded generically (path and query parameters, or the JSON body,
onto the request message); execute, the event stream and health have the
shapes users of webhook-style tools expect and a handler of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_PARAM = re.compile(r"\{([a-z_]+)\}")

__all__ = ["ROUTES", "Body", "Kind", "Route"]


class Kind(Enum):
    TRANSCODE = "transcode"  # parameters or body onto the request message
    EXECUTE = "execute"  # the body is the trigger input
    EVENTS = "events"  # Server-Sent Events, resumable by sequence
    HEALTH = "health"  # no key, nothing tenant-specific
    OPENAPI = "openapi"  # this API's own document


class Body(Enum):
    NONE = "none"  # parameters come from the path and the query
    MESSAGE = "message"  # the request message as JSON (path parameters win)
    ANY_JSON = "any_json"  # any JSON value: the trigger input


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    rpc: str  # the exposed method's path; "" for the OpenAPI document
    summary: str
    kind: Kind = Kind.TRANSCODE
    body: Body = Body.NONE
    status: int = 200

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.template))

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", self.template) + "$")


_EX = "/nodedrop.execution.v1.ExecutionService/"
_WF = "/nodedrop.workflow.v1.WorkflowService/"
_EV = "/nodedrop.event.v1.EventService/"

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/workflows/{workflow_id}/execute",
        _EX + "ExecuteWorkflow",
        "Run a stored workflow; the body is its trigger input",
        Kind.EXECUTE,
        Body.ANY_JSON,
        202,
    ),
    Route("GET", "/api/workflows", _WF + "ListWorkflows", "List workflows"),
    Route("GET", "/api/workflows/{workflow_id}", _WF + "GetWorkflow", "Get a workflow"),
    Route("GET", "/api/executions", _EX + "ListExecutions", "List executions, filtered"),
    Route("GET", "/api/executions/{execution_id}", _EX + "GetExecution", "Get an execution"),
    Route(
        "POST",
        "/api/executions/{execution_id}/cancel",
        _EX + "CancelExecution",
        "Cancel an execution",
        body=Body.MESSAGE,
    ),
    Route(
        "POST",
        "/api/executions/{execution_id}/retry",
        _EX + "RetryExecution",
        "Retry a finished execution",
        body=Body.MESSAGE,
    ),
    Route(
        "GET",
        "/api/executions/{execution_id}/events",
        _EV + "StreamExecutionEvents",
        "Follow an execution's events (Server-Sent Events, resumable with Last-Event-ID)",
        Kind.EVENTS,
    ),
    Route(
        "GET",
        "/api/health",
        _EX + "GetSystemHealth",
        "Queue statistics of the whole system (no key)",
        Kind.HEALTH,
    ),
    Route("GET", "/api/openapi.json", "", "This document", Kind.OPENAPI),
)
