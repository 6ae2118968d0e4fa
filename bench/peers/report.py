"""Markdown table and matplotlib chart from one result file.

python bench/peers/report.py [bench/peers/results/<run>.json]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent
CHART = ROOT.parents[1] / "docs" / "img" / "bench-peers.png"


def _fmt(summary: dict[str, Any], key: str, digits: int = 0) -> str:
    if "error" in summary:
        return "error"
    if key not in summary:
        return "—"
    s = summary[key]
    if math.isnan(s["median"]):
        return "—"
    mark = "" if summary.get("all_finished", True) else "*"
    if s["min"] == s["max"]:
        return f"{s['median']:,.{digits}f}{mark}"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f} to {s['max']:,.{digits}f}){mark}"


def _summary(entry: dict[str, Any], scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = entry["scenarios"].get(scenario, {})
    if "skipped" in data:
        return {}
    summary: dict[str, Any] = data.get("summary", {})
    return summary


def _bars(
    doc: dict[str, Any], scenario: str, key: str, per_cpu_s: bool = False
) -> tuple[list[str], list[float], list[float], list[float]]:
    """Names, medians and the distances to min and max, for the systems that
    have this figure; per_cpu_s turns µs per job into jobs per CPU-second."""
    names, med, lo, hi = [], [], [], []
    for name, entry in doc["systems"].items():
        figure = _summary(entry, scenario).get(key)
        if figure is None or math.isnan(figure["median"]) or figure["min"] <= 0:
            continue
        mid, low, high = figure["median"], figure["min"], figure["max"]
        if per_cpu_s:
            mid, low, high = 1e6 / mid, 1e6 / high, 1e6 / low
        names.append(name)
        med.append(mid)
        lo.append(mid - low)
        hi.append(high - mid)
    return names, med, lo, hi


def table(doc: dict[str, Any]) -> str:
    rows = [
        "| system | throughput, jobs/s | idle latency p50, ms | p99, ms | chain, steps/s "
        "| events p50, ms | events p99, ms | deliveries/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in doc["systems"].items():
        thr, lat = _summary(entry, "throughput"), _summary(entry, "latency")
        chain, ev = _summary(entry, "chain"), _summary(entry, "events")
        rows.append(
            f"| {name} | {_fmt(thr, 'rate')} | {_fmt(lat, 'p50_ms', 2)} | {_fmt(lat, 'p99_ms', 2)} "
            f"| {_fmt(chain, 'rate')} | {_fmt(ev, 'p50_ms', 1)} | {_fmt(ev, 'p99_ms', 1)} "
            f"| {_fmt(ev, 'deliveries_per_s')} |"
        )
    rows += [
        "",
        "| system | worker CPU, µs/job | Redis CPU, µs/job | Redis round trips/job "
        "| jobs per worker CPU-second | chain: worker CPU, µs/step | chain: Redis CPU, µs/step "
        "| chain: round trips/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in doc["systems"].items():
        thr, chain = _summary(entry, "throughput"), _summary(entry, "chain")
        cpu = thr.get("cpu_us_per_job")
        per_cpu_s = f"{1e6 / cpu['median']:,.0f}" if cpu and cpu["median"] > 0 else "—"
        rows.append(
            f"| {name} | {_fmt(thr, 'cpu_us_per_job')} | {_fmt(thr, 'redis_cpu_us_per_job')} "
            f"| {_fmt(thr, 'redis_round_trips_per_job', 2)} "
            f"| {per_cpu_s} | {_fmt(chain, 'cpu_us_per_job')} "
            f"| {_fmt(chain, 'redis_cpu_us_per_job')} "
            f"| {_fmt(chain, 'redis_round_trips_per_job', 2)} |"
        )
    return "\n".join(rows)


def _median(doc: dict[str, Any], system: str, scenario: str, key: str) -> float:
    entry = doc["systems"].get(system)
    figure = _summary(entry, scenario).get(key) if entry else None
    return float(figure["median"]) if figure else math.nan


def ratios(doc: dict[str, Any], us: str = "nodedrop") -> list[str]:
    """The goals of issue 8, as measured: lines of text."""
    python_peers = [n for n in doc["systems"] if n not in (us, "bullmq")]
    lines = []
    for scenario, unit in (("throughput", "jobs/s"), ("chain", "steps/s")):
        ours = _median(doc, us, scenario, "rate")
        bull = _median(doc, "bullmq", scenario, "rate")
        best = max(python_peers, key=lambda n: _median(doc, n, scenario, "rate"), default="")
        best_rate = _median(doc, best, scenario, "rate") if best else math.nan
        lines.append(
            f"{scenario}: {us} {ours:,.0f} {unit} = {ours / bull:.2f}x BullMQ ({bull:,.0f}), "
            f"{ours / best_rate:.2f}x the fastest Python peer ({best} {best_rate:,.0f})"
        )
    ours_cpu = _median(doc, us, "throughput", "cpu_us_per_job")
    bull_cpu = _median(doc, "bullmq", "throughput", "cpu_us_per_job")
    lines.append(
        f"worker CPU per job: {us} {ours_cpu:,.0f} µs vs BullMQ {bull_cpu:,.0f} µs "
        f"({bull_cpu / ours_cpu:.2f}x as many jobs per worker CPU-second)"
    )
    ours_redis = _median(doc, us, "throughput", "redis_cpu_us_per_job")
    bull_redis = _median(doc, "bullmq", "throughput", "redis_cpu_us_per_job")
    ours_trips = _median(doc, us, "throughput", "redis_round_trips_per_job")
    bull_trips = _median(doc, "bullmq", "throughput", "redis_round_trips_per_job")
    lines.append(
        f"Redis per job: {us} {ours_redis:,.0f} µs CPU and {ours_trips:.2f} round trips vs "
        f"BullMQ {bull_redis:,.0f} µs and {bull_trips:.2f} (CPU ratio "
        f"{ours_redis / bull_redis:.2f}; goal <= 1)"
    )
    ours_p50 = _median(doc, us, "latency", "p50_ms")
    bull_p50 = _median(doc, "bullmq", "latency", "p50_ms")
    lines.append(
        f"idle latency p50: {us} {ours_p50:.2f} ms vs BullMQ {bull_p50:.2f} ms "
        f"(ratio {ours_p50 / bull_p50:.2f}; goal <= 1)"
    )
    ours_ev = _median(doc, us, "events", "deliveries_per_s")
    bull_ev = _median(doc, "bullmq", "events", "deliveries_per_s")
    lines.append(
        f"events: {us} {ours_ev:,.0f} deliveries/s vs BullMQ {bull_ev:,.0f} "
        f"({ours_ev / bull_ev:.2f}x); p50 {_median(doc, us, 'events', 'p50_ms'):,.0f} ms vs "
        f"{_median(doc, 'bullmq', 'events', 'p50_ms'):,.0f} ms"
    )
    return lines


def chart(doc: dict[str, Any], quick: bool = False) -> Path:
    fig, grid = plt.subplots(2, 3, figsize=(16, 9))
    panels = (
        ("throughput", "rate", "no-op jobs/s, one worker process", False, False),
        ("throughput", "cpu_us_per_job", "no-op jobs per worker CPU-second (log)", True, True),
        ("chain", "rate", "five-step chains: steps/s", False, False),
        ("latency", "p50_ms", "idle latency enqueue -> start, ms (log; dash = p99)", True, False),
        ("events", "deliveries_per_s", "progress events delivered/s, 100 listeners", False, False),
        ("chain", "cpu_us_per_job", "chain steps per worker CPU-second (log)", True, True),
    )
    for ax, (scenario, key, title, log, per_cpu_s) in zip(grid.flat, panels, strict=True):
        names, med, lo, hi = _bars(doc, scenario, key, per_cpu_s)
        colors = ["#d1495b" if n == "nodedrop" else "#5f7ea3" for n in names]
        ax.bar(names, med, yerr=[lo, hi], color=colors, capsize=3)
        if log:
            ax.set_yscale("log")
        if scenario == "latency":
            p99 = [_summary(doc["systems"][n], scenario)["p99_ms"]["median"] for n in names]
            ax.plot(names, p99, "k_", markersize=16, label="p99")
            ax.legend(loc="upper left")
        for i, value in enumerate(med):
            label = f"{value:.1f}" if value < 100 else f"{value:,.0f}"
            ax.annotate(label, (i, value), ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45)
    machine = doc["machine"]
    fig.suptitle(
        f"nodedrop-exec vs peer job queues: median of rounds, bars show the range; "
        f"Redis {machine['redis']}, {machine['cpus']} shared CPUs, {doc['started_at']}",
        fontsize=11,
    )
    fig.tight_layout()
    # Quick runs are for development: kept out of the repository.
    target = ROOT / ".envs" / "quick.png" if quick else CHART
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


if __name__ == "__main__":
    # Default: the newest full run (result files are named by their UTC start).
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else max((ROOT / "results").glob("2*.json"))
    document = json.loads(path.read_text())
    print(table(document))
    print("\n".join(ratios(document)))
    print(chart(document, quick=document.get("quick", False)))
