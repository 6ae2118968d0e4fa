"""Markdown table and matplotlib chart from one result file.

python bench/peers/report.py [results/latest.json]
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
    data = entry["scenarios"].get(scenario, {})
    if "skipped" in data:
        return {}
    return data.get("summary", {})


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
    return "\n".join(rows)


def chart(doc: dict[str, Any], quick: bool = False) -> Path:
    names = list(doc["systems"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    panels = (
        ("throughput", "rate", "no-op jobs per second (median, range)", False),
        ("chain", "rate", "chain steps per second (median, range)", False),
        ("latency", "p50_ms", "idle latency p50, ms (log; bar = p50, tick = p99)", True),
    )
    for ax, (scenario, key, title, log) in zip(axes, panels, strict=True):
        med, lo, hi, p99 = [], [], [], []
        for name in names:
            s = _summary(doc["systems"][name], scenario).get(key)
            ok = s is not None and not math.isnan(s["median"])
            med.append(s["median"] if ok else 0.0)
            lo.append(s["median"] - s["min"] if ok else 0.0)
            hi.append(s["max"] - s["median"] if ok else 0.0)
            q = _summary(doc["systems"][name], scenario).get("p99_ms")
            p99.append(q["median"] if q else math.nan)
        colors = ["#d1495b" if n == "nodedrop" else "#5f7ea3" for n in names]
        ax.bar(names, med, yerr=[lo, hi], color=colors, capsize=3)
        if log:
            ax.set_yscale("log")
            ax.plot(names, p99, "k_", markersize=14, label="p99")
            ax.legend(loc="upper left")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45)
        for i, value in enumerate(med):
            ax.annotate(
                f"{value:,.0f}" if not log else f"{value:.1f}",
                (i, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    machine = doc["machine"]
    fig.suptitle(
        f"nodedrop-exec vs peer job queues — one worker process each, Redis {machine['redis']}, "
        f"{machine['cpus']} CPUs, {doc['started_at']}",
        fontsize=11,
    )
    fig.tight_layout()
    # Quick runs are for development: kept out of the repository.
    target = ROOT / ".envs" / "quick.png" if quick else CHART
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "latest.json"
    document = json.loads(path.read_text())
    print(table(document))
    print(chart(document, quick=document.get("quick", False)))
