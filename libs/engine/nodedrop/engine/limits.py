"""Limits that keep one workflow from exhausting the process that runs it.

The definition limits are checked by validation; the data budgets are
checked as the execution runs (a node over one fails with ``limit_exceeded``),
and the expression costs before each costly evaluation (over the limit fails
with ``expression_cost_exceeded``), and a code node's CPU time and memory
by its sandbox (``code_timeout``, ``code_memory_exceeded``).
docs/workflows.md lists them all.
"""

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
    # Depth of nested objects/arrays in data: trigger data, test inputs and
    # node outputs (the API checks the same number).
    max_data_depth: int = 64
    # Items one node may output, summed over its ports.
    max_output_items: int = 100_000
    # JSON-encoded bytes of one node's outputs (what its checkpoint holds).
    max_output_bytes: int = 16 * 1024 * 1024
    # Bytes of a NODE_COMPLETED event's data; larger outputs go out as a summary.
    max_event_bytes: int = 1024 * 1024
    # Sum of every node output's encoded bytes in one execution attempt.
    max_execution_bytes: int = 64 * 1024 * 1024
    # Estimated cost of one expression evaluation (see expression_cost.py).
    max_expression_cost: int = 100_000
    # Sum of the estimated costs of one node run's costly evaluations.
    max_node_expression_cost: int = 1_000_000
    # CPU time of one code node run (all its items), in milliseconds.
    code_cpu_ms: int = 2000
    # Memory one code node run may allocate inside its JavaScript engine.
    code_memory_bytes: int = 64 * 1024 * 1024
    # console.* lines a code node run keeps, and their bytes; the rest are counted.
    max_code_log_lines: int = 100
    max_code_log_bytes: int = 16 * 1024


DEFAULT_LIMITS = Limits()
