"""`nodedrop run --local` and `nodedrop validate`, called through the CLI entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nodedrop.cli.commands import run
from nodedrop.cli.commands.run import EventPrinter
from nodedrop.cli.main import main
from nodedrop.engine import EventType

WORKFLOWS = Path(__file__).parent.parent / "workflows"


def test_run_local_json_prints_final_execution(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            str(WORKFLOWS / "filter.json"),
            "--local",
            "--json",
            "--input",
            '[{"n": 1}, {"n": 2}]',
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "completed"
    assert result["outputs"] == {"f": [{"n": 2}]}
    assert result["error"] is None
    assert "node_completed f" in err  # events as they happen, on stderr with --json


def test_run_local_failure_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(WORKFLOWS / "stop_and_error.json"), "--local", "--input", '{"id": 1}'])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "execution_failed" in out and "order 1 is invalid" in out


def test_run_input_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.json"
    data.write_text('{"a": 5}')
    code = main(
        ["run", str(WORKFLOWS / "trigger_object.json"), "--local", "--json", "--input", f"@{data}"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"start": [{"a": 5}]}


def test_run_invalid_workflow_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"id": "x", "type": "noop"}]}')
    assert main(["run", str(bad), "--local"]) == 2
    assert "no_trigger" in capsys.readouterr().err
    assert main(["run", str(WORKFLOWS / "filter.json"), "--local", "--input", "{nope"]) == 2
    assert main(["run", str(tmp_path / "missing.json"), "--local"]) == 2


def test_run_without_local_needs_remote_mode(capsys: pytest.CaptureFixture[str]) -> None:
    if run.REMOTE_RUNNER is not None:
        pytest.skip("remote mode is installed")
    assert main(["run", str(WORKFLOWS / "filter.json")]) == 2
    assert "--local" in capsys.readouterr().err


def test_validate_ok_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(WORKFLOWS / "loop_nested.json")]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "nodes": [{"id": "t", "type": "manual_trigger"}, {"id": "f", "type": "filter"}],
                "connections": [{"from": "t", "to": "ghost"}],
            }
        )
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "nodes[1].parameters.condition: missing_parameter" in out
    assert "connections[0].to: dangling_connection" in out


def test_live_printer_on_terminal() -> None:
    stream = io.StringIO()
    printer = EventPrinter(stream, live=True)
    printer.show(1, EventType.NODE_STARTED, "a", None)
    printer.show(2, EventType.NODE_COMPLETED, "a", None)
    printer.show(3, EventType.EXECUTION_COMPLETED, None, None)
    text = stream.getvalue()
    assert "\r\x1b[2K[1 nodes] ✓ a" in text
    assert text.endswith("execution_completed\n")


def test_validate_refuses_a_function_cel_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = tmp_path / "max.json"
    wf.write_text(
        json.dumps(
            {
                "name": "max",
                "nodes": [
                    {"id": "t", "type": "manual_trigger"},
                    {"id": "top", "type": "set", "parameters": {"fields": {"m": "json.v.max()"}}},
                ],
                "connections": [{"from": "t", "to": "top"}],
            }
        )
    )
    assert main(["validate", str(wf)]) == 1
    out = capsys.readouterr().out
    assert "nodes[1].parameters.fields.m: unknown_function" in out
    assert "max()" in out
