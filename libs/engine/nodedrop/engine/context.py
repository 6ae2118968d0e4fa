"""What a running node can see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodedrop.engine.expressions import EvalEnv
from nodedrop.engine.model import Items, Node
from nodedrop.engine.results import ExecutionInfo

if TYPE_CHECKING:
    from nodedrop.engine.cancel import CancelToken
    from nodedrop.engine.config import EngineConfig


@dataclass(slots=True)
class NodeContext:
    node: Node
    trigger: Any
    # The `execution` CEL variable: id, attempt, workflow.
    execution: dict[str, Any]
    info: ExecutionInfo
    # Node id -> main output items of nodes that already ran (the `nodes` variable).
    nodes: dict[str, Items]
    config: EngineConfig
    cancel: CancelToken | None = None
    depth: int = 0
    # time.monotonic() past which the node's expressions stop it (node_timeout);
    # with timeout_s when that deadline is the node's own.
    deadline: float | None = None
    timeout_s: float | None = None

    def env(self, items: Items) -> EvalEnv:
        return EvalEnv(
            items,
            self.nodes,
            self.trigger,
            self.execution,
            limits=self.config.limits,
            deadline=self.deadline,
            node_id=self.node.id,
            timeout_s=self.timeout_s,
            cancel=self.cancel,
        )
