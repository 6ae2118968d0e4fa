"""The code node's parameters, checked at validation (docs/workflows.md, "Code")."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from nodedrop.cli.follow import EventPrinter as FollowPrinter
from nodedrop.cli.main import main
from nodedrop.client.convert import event_of
from nodedrop.engine import parse_workflow
from nodedrop.engine.js_syntax import check_syntax
from nodedrop.engine.local import run_local
from nodedrop.engine.nodes.code import CONSOLE_KEY
from nodedrop.engine.validate import validate_workflow
from nodedrop.event.v1 import event_pb2


def _workflow(**parameters: Any) -> dict[str, Any]:
    return {
        "name": "code",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "c", "type": "code", "parameters": parameters},
        ],
        "connections": [{"from": "start", "to": "c"}],
    }


def _problems(**parameters: Any) -> list[tuple[str, str, str]]:
    return [(p.path, p.code, p.message) for p in validate_workflow(_workflow(**parameters))]


def test_a_syntax_error_is_reported_with_line_and_column() -> None:
    ((path, code, message),) = _problems(code="const a = 1;\nconst b = {x: 1,, y};\nreturn [a]")
    assert (path, code) == ("nodes[1].parameters.code", "code_syntax_error")
    assert message.startswith("line 2, column ")
    assert "SyntaxError" in message


def test_valid_modern_javascript_passes() -> None:
    assert not _problems(
        code="const x = $json?.a ?? 1;\nfor (const [k, v] of Object.entries({})) {}\n"
        "const r = await Promise.resolve([{x}]);\nreturn r",
        mode="runOnceForEachItem",
    )


def test_code_that_closes_its_function_never_runs_at_validation() -> None:
    # Parsed whole, then the wrapper's first statement throws: nothing runs.
    assert check_syntax("})\nwhile (true) {}\n(async function () {") is None


def test_python_is_refused_with_the_reason() -> None:
    ((path, code, message),) = _problems(code="return items", language="python")
    assert (path, code) == ("nodes[1].parameters.language", "language_unavailable")
    assert "held to the sandbox's guarantees" in message


def test_unknown_mode_and_missing_code() -> None:
    problems = _problems(mode="runOnce")
    assert {(p, c) for p, c, _ in problems} == {
        ("nodes[1].parameters.mode", "invalid_parameter"),
        ("nodes[1].parameters.code", "missing_parameter"),
    }


async def test_without_a_sandbox_the_node_fails_with_code_unavailable() -> None:
    run = await run_local(parse_workflow(_workflow(code="return items")), {})
    error = run.result.error
    assert error is not None
    assert (error.code, error.retryable) == ("code_unavailable", False)


def test_cli_validate_names_the_line_and_run_local_runs_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_workflow(code="const a = 1;\nreturn [{a: a +}]")))
    assert main(["validate", str(bad)]) == 1
    assert "nodes[1].parameters.code: code_syntax_error: line 2, column" in capsys.readouterr().out
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            _workflow(
                code="console.log('n is', $input.first().json.n)\n"
                "return items.map(i => ({twice: i.json.n * 2}))"
            )
        )
    )
    assert main(["run", str(good), "--local", "--json", "--input", '[{"n": 21}]']) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["outputs"] == {"c": [{"twice": 42}]}
    assert "console.log: n is 21" in err


def test_follow_printer_shows_console_lines_and_counts_only_ports() -> None:
    out = io.StringIO()
    event = event_pb2.ExecutionEvent(
        type=event_pb2.EVENT_TYPE_NODE_COMPLETED,
        sequence=5,
        node_id="c",
        data_json=json.dumps({"main": [{}], CONSOLE_KEY: [{"level": "warn", "line": "careful"}]}),
    )
    event.time.GetCurrentTime()
    FollowPrinter(out)(event_of(event))
    first, second = out.getvalue().splitlines()
    assert first.endswith("main: 1 item")
    assert second.strip() == "console.warn: careful"
