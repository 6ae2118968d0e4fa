"""Workflow conformance cases: one JSON file per case, runnable in every mode.

Each file holds ``workflow`` (the JSON format), ``trigger`` (trigger data),
optional ``trigger_generate`` ({"count": n, "field": name} makes n items
``{name: i}``), optional ``cancel_after_s`` (cancel the execution after that
delay) and ``expect``:

- ``status``: completed | failed | cancelled | timed_out
- ``outputs``: the exact result outputs (terminal node id -> items), or
  ``outputs_keys``: just the terminal node ids
- ``skipped``: the exact set of skipped node ids
- ``error_code``, ``error_node``, ``error_contains``, ``retryable``: about the error
- ``min_seconds`` / ``max_seconds``: generous bounds on the wall time

A mode's test runs the case its own way and hands what it got to ``check``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Observed:
    """What a mode observed for one execution."""

    status: str
    outputs: dict[str, list[dict[str, Any]]]
    error: dict[str, Any] | None = None
    skipped: tuple[str, ...] | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    workflow: dict[str, Any]
    trigger: Any
    expect: dict[str, Any]
    cancel_after_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, got: Observed) -> None:
        """Raise AssertionError with a readable diff when ``got`` is not what was expected."""
        e = self.expect
        where = f"case {self.name}"
        assert got.status == e["status"], (
            f"{where}: status {got.status}, expected {e['status']}; error={got.error}"
        )
        if "outputs" in e:
            assert got.outputs == e["outputs"], (
                f"{where}: outputs\n{got.outputs}\n!=\n{e['outputs']}"
            )
        if "outputs_keys" in e:
            assert sorted(got.outputs) == sorted(e["outputs_keys"]), (
                f"{where}: {sorted(got.outputs)}"
            )
        if "skipped" in e and got.skipped is not None:
            assert sorted(set(got.skipped)) == sorted(e["skipped"]), (
                f"{where}: skipped {got.skipped}"
            )
        if "error_code" in e:
            assert got.error is not None, f"{where}: no error"
            assert got.error.get("code") == e["error_code"], f"{where}: error {got.error}"
        if "error_node" in e:
            assert got.error is not None and got.error.get("node_id") == e["error_node"], got.error
        if "error_contains" in e:
            assert got.error is not None and e["error_contains"] in got.error.get("message", ""), (
                got.error
            )
        if "retryable" in e:
            assert got.error is not None and got.error.get("retryable") == e["retryable"], got.error
        if "max_seconds" in e:
            assert got.seconds < e["max_seconds"], f"{where}: took {got.seconds:.3f}s"
        if "min_seconds" in e:
            assert got.seconds >= e["min_seconds"], f"{where}: took {got.seconds:.3f}s"


def _trigger(data: dict[str, Any]) -> Any:
    gen = data.get("trigger_generate")
    if gen:
        return [{gen["field"]: i} for i in range(gen["count"])]
    return data.get("trigger")


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        cases.append(
            Case(
                name=path.stem,
                description=data.get("description", ""),
                workflow=data["workflow"],
                trigger=_trigger(data),
                expect=data["expect"],
                cancel_after_s=data.get("cancel_after_s"),
                extra={k: v for k, v in data.items() if k not in {"workflow", "trigger", "expect"}},
            )
        )
    return cases
