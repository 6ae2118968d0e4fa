"""Size limits checked by validation, so one workflow cannot exhaust a service."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_nodes: int = 1000
    max_connections: int = 5000
    # JSON-encoded size of one node's parameters.
    max_parameter_bytes: int = 256 * 1024
    max_expression_length: int = 4096
    # Depth of nested objects/arrays inside parameters (and inline sub-workflows).
    max_nesting_depth: int = 32


DEFAULT_LIMITS = Limits()
