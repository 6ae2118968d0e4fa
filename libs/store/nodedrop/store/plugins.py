"""Extra node types: NODEDROP_PLUGINS names modules with a ``register(registry)``
function.  Workers and the scheduler (which validates what workers will run)
load the same list."""

from __future__ import annotations

import importlib

from nodedrop.engine import NodeRegistry
from nodedrop.engine.nodes import default_registry


def build_registry(modules: tuple[str, ...] = ()) -> NodeRegistry:
    """The default node types plus each plugin's; a bad plugin raises ImportError."""
    registry = default_registry().copy()
    for name in modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise ImportError(f"plugin {name} has no register(registry) function")
        register(registry)
    return registry
