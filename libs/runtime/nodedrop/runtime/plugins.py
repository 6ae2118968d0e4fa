"""Extra node types: NODEDROP_PLUGINS names modules with a ``register(registry)``
function.  Every process that validates or runs workflows (the API, the
scheduler, workers) loads the same list through this module, so a node type
one accepts the others accept too."""

from __future__ import annotations

import importlib

from nodedrop.common.settings import Env, env_str
from nodedrop.engine import NodeRegistry
from nodedrop.engine.nodes import default_registry

__all__ = ["build_registry", "plugin_modules"]


def plugin_modules(env: Env) -> tuple[str, ...]:
    """The modules NODEDROP_PLUGINS names (comma-separated)."""
    return tuple(m.strip() for m in env_str(env, "NODEDROP_PLUGINS", "").split(",") if m.strip())


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
