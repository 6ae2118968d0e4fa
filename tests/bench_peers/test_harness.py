"""The peer benchmark harness (bench/peers): figures, catalog and bounds.

The harness is a set of scripts, not a package: its modules are imported
from their folder here and then removed from sys.modules, so that their short
names (stats, report, run, ...) cannot shadow anything else in the session.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PEERS_DIR = Path(__file__).resolve().parents[2] / "bench" / "peers"
_NAMES = ("stats", "catalog", "scenarios", "envs", "systems", "report", "run")


def _load() -> dict[str, ModuleType]:
    sys.path.insert(0, str(PEERS_DIR))
    try:
        return {name: importlib.import_module(name) for name in _NAMES}
    finally:
        sys.path.remove(str(PEERS_DIR))
        for name in _NAMES:
            sys.modules.pop(name, None)


M = _load()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert M["stats"].percentile(values, 50) == 50.0
    assert M["stats"].percentile(values, 99) == 99.0
    assert M["stats"].percentile(values, 100) == 100.0
    assert M["stats"].percentile([7.0], 99) == 7.0
    assert math.isnan(M["stats"].percentile([], 50))


def test_summary_is_median_and_range() -> None:
    assert M["stats"].summary([3.0, 1.0, 10.0]) == {"median": 3.0, "min": 1.0, "max": 10.0}
    assert math.isnan(M["stats"].summary([])["median"])


def test_every_peer_has_its_own_redis_db_and_pinned_versions() -> None:
    peers = M["catalog"].PEERS
    names = [p.name for p in peers]
    assert names == ["bullmq", "celery", "dramatiq", "arq", "rq", "taskiq", "saq"]
    dbs = [p.redis_db for p in peers] + [M["systems"].NODEDROP.redis_db]
    assert len(set(dbs)) == len(dbs)
    # The server is shared: the harness FLUSHDBs these numbers only.
    assert all(8 <= db <= 15 for db in dbs)
    for peer in peers:
        for requirement in peer.requirements:
            assert "==" in requirement or "@" in requirement[1:], requirement


def test_full_plan_has_the_issue_sizes_and_every_round_is_capped() -> None:
    full = {s.name: s for s in M["scenarios"].plan(quick=False)}
    assert full["throughput"].jobs == 20_000
    assert full["latency"].jobs == 200
    assert M["scenarios"].LISTENERS == 100
    assert all(s.rounds >= 3 and 0 < s.timeout_s <= 60 for s in full.values())
    quick = M["scenarios"].plan(quick=True)
    assert all(q.jobs < full[q.name].jobs and q.rounds == 1 for q in quick)


def _doc(systems: dict[str, Any]) -> dict[str, Any]:
    return {"machine": {"redis": "7", "cpus": 2}, "started_at": "now", "systems": systems}


def _entry(**scenarios: Any) -> dict[str, Any]:
    return {"scenarios": scenarios}


def test_round_summary_marks_unfinished_and_keeps_errors_out() -> None:
    run = M["run"]
    rounds = [
        {"rate": 100.0, "finished": True, "completed": 10},
        {"error": "exit 1: boom"},
        {"rate": 50.0, "finished": False, "completed": 5},
    ]
    summary = run._summarise("throughput", rounds)
    assert summary["rate"] == {"median": 75.0, "min": 50.0, "max": 100.0}
    assert summary["all_finished"] is False
    assert summary["rounds_ok"] == 2
    assert run._summarise("throughput", [{"error": "x"}]) == {"error": "x"}


def test_events_rounds_keep_percentiles_not_samples() -> None:
    run = M["run"]
    events = next(s for s in M["scenarios"].plan(quick=True) if s.name == "events")
    out = run._condense(events, {"latencies_ms": [1.0, 2.0, 3.0, 4.0], "deliveries_per_s": 9.0})
    assert "latencies_ms" not in out
    assert (out["p50_ms"], out["p99_ms"]) == (2.0, 4.0)


def test_table_formats_median_range_unfinished_and_skipped() -> None:
    summary = {
        "rate": {"median": 1500.0, "min": 1000.0, "max": 2000.0},
        "redis_round_trips_per_job": {"median": 0.25, "min": 0.25, "max": 0.25},
        "all_finished": True,
    }
    slow = {"rate": {"median": 15.0, "min": 15.0, "max": 15.0}, "all_finished": False}
    doc = _doc(
        {
            "fast": _entry(throughput={"summary": summary}, events={"skipped": "no API"}),
            "slow": _entry(throughput={"summary": slow}),
        }
    )
    lines = M["report"].table(doc).splitlines()
    assert lines[2].startswith("| fast | 1,500 (1,000 to 2,000) |")
    assert lines[3].startswith("| slow | 15* |")
    assert lines[2].endswith("| — | — | — |")
    cost = lines[lines.index("") + 3]
    assert cost == "| fast | — | — | 0.25 | — | — | — | — |"


def test_chart_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = M["report"]
    monkeypatch.setattr(report, "CHART", tmp_path / "chart.png")
    figure = {"median": 10.0, "min": 9.0, "max": 11.0}
    doc = _doc(
        {
            "nodedrop": _entry(
                throughput={"summary": {"rate": figure}},
                latency={"summary": {"p50_ms": figure, "p99_ms": figure}},
            ),
            "other": _entry(events={"skipped": "no API"}),
        }
    )
    path = report.chart(doc)
    assert path == tmp_path / "chart.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratios_compare_with_bullmq_and_the_fastest_python_peer() -> None:
    def fig(value: float) -> dict[str, float]:
        return {"median": value, "min": value, "max": value}

    def system(rate: float, p50: float, deliveries: float | None = None) -> dict[str, Any]:
        scenarios: dict[str, Any] = {
            "throughput": {
                "summary": {
                    "rate": fig(rate),
                    "cpu_us_per_job": fig(1e6 / rate),
                    "redis_cpu_us_per_job": fig(5e5 / rate),
                    "redis_round_trips_per_job": fig(rate / 1e4),
                }
            },
            "chain": {"summary": {"rate": fig(rate / 2)}},
            "latency": {"summary": {"p50_ms": fig(p50), "p99_ms": fig(p50)}},
            "events": {"skipped": "no API"},
        }
        if deliveries is not None:
            scenarios["events"] = {
                "summary": {"deliveries_per_s": fig(deliveries), "p50_ms": fig(p50)}
            }
        return {"scenarios": scenarios}

    doc = _doc(
        {
            "nodedrop": system(8000.0, 1.0, 500.0),
            "bullmq": system(4000.0, 2.0, 1000.0),
            "dramatiq": system(1600.0, 5.0),
            "celery": system(400.0, 3.0),
        }
    )
    lines = M["report"].ratios(doc)
    assert lines[0].startswith("throughput: nodedrop 8,000 jobs/s = 2.00x BullMQ (4,000), 5.00x")
    assert "(dramatiq 1,600)" in lines[0]
    assert lines[2] == (
        "worker CPU per job: nodedrop 125 µs vs BullMQ 250 µs "
        "(2.00x as many jobs per worker CPU-second)"
    )
    assert lines[3] == (
        "Redis per job: nodedrop 62 µs CPU and 0.80 round trips vs BullMQ 125 µs and 0.40 "
        "(CPU ratio 0.50; goal <= 1)"
    )
    assert "ratio 0.50; goal <= 1" in lines[4]
    assert "(0.50x)" in lines[5]
