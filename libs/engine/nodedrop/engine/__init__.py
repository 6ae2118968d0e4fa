"""The nodedrop workflow engine: model, validation, nodes, CEL expressions, executor.

Pure: no Redis, gRPC or SQL. Adapters (worker, API) implement the two ports in
``nodedrop.engine.ports`` and call ``run_workflow``.
"""

from nodedrop.engine.cancel import CancelToken
from nodedrop.engine.config import EngineConfig
from nodedrop.engine.errors import (
    EngineError,
    ErrorInfo,
    ExpressionError,
    NodeError,
    NodeTimeoutError,
    Problem,
    UnknownNodeTypeError,
    ValidationError,
)
from nodedrop.engine.events import EngineEvent, EventType
from nodedrop.engine.executor import run_workflow
from nodedrop.engine.http_policy import HttpPolicy
from nodedrop.engine.limits import DEFAULT_LIMITS, Limits
from nodedrop.engine.model import (
    MAIN,
    Connection,
    Item,
    Items,
    Node,
    NodeOutputs,
    NodeRetry,
    OnError,
    Workflow,
    WorkflowSettings,
)
from nodedrop.engine.nodes import default_registry
from nodedrop.engine.parse import parse_workflow, workflow_to_dict
from nodedrop.engine.ports import (
    CheckpointStore,
    EventSink,
    MemoryCheckpointStore,
    MemoryEventSink,
    NullSink,
)
from nodedrop.engine.registry import NodeRegistry, NodeType, ParamSpec, Prepared
from nodedrop.engine.results import ExecutionInfo, ExecutionResult, ExecutionStatus
from nodedrop.engine.single import execute_node
from nodedrop.engine.validate import validate_workflow

__all__ = [
    "DEFAULT_LIMITS",
    "MAIN",
    "CancelToken",
    "CheckpointStore",
    "Connection",
    "EngineConfig",
    "EngineError",
    "EngineEvent",
    "ErrorInfo",
    "EventSink",
    "EventType",
    "ExecutionInfo",
    "ExecutionResult",
    "ExecutionStatus",
    "ExpressionError",
    "HttpPolicy",
    "Item",
    "Items",
    "Limits",
    "MemoryCheckpointStore",
    "MemoryEventSink",
    "Node",
    "NodeError",
    "NodeOutputs",
    "NodeRegistry",
    "NodeRetry",
    "NodeTimeoutError",
    "NodeType",
    "NullSink",
    "OnError",
    "ParamSpec",
    "Prepared",
    "Problem",
    "UnknownNodeTypeError",
    "ValidationError",
    "Workflow",
    "WorkflowSettings",
    "default_registry",
    "execute_node",
    "parse_workflow",
    "run_workflow",
    "validate_workflow",
    "workflow_to_dict",
]
