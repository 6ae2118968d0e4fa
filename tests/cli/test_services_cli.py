from __future__ import annotations

import pytest

from nodedrop.cli.main import build_parser, main


def test_every_service_command_is_discovered() -> None:
    parser = build_parser()
    for command in ("api", "scheduler", "worker", "events", "gateway", "dev"):
        args = parser.parse_args([command])
        assert callable(args.func)


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: nodedrop" in capsys.readouterr().err


def test_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEDROP_PARTITIONS", "many")
    assert main(["scheduler"]) == 2
    assert "NODEDROP_PARTITIONS" in capsys.readouterr().err
