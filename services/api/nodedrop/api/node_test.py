"""ExecuteNode: runs one node with given items through the engine; stores nothing."""

from __future__ import annotations

from nodedrop.common.errors import FailedPrecondition
from nodedrop.execution.v1 import execution_service_pb2 as pb

__all__ = ["run_node"]


async def run_node(request: pb.ExecuteNodeRequest, *, max_nodes: int) -> pb.ExecuteNodeResponse:
    # The engine's single-node entry point has not landed yet; answering a
    # clear FAILED_PRECONDITION beats pretending with a partial runner.
    raise FailedPrecondition("ExecuteNode is not available: the engine has no execute_node yet")
