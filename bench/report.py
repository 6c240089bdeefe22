"""Summary, Markdown table and plots of the benchmark suite's runs (see bench.suite).

matplotlib is optional (``pip install -e '.[bench]'``): without it the JSON and the
Markdown table are written and the plots are skipped with a note.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cluster import spread

FIGURES: tuple[tuple[str, str, str], ...] = (
    ("join_s", "join: last start → all list all", "s"),
    ("first_suspicion_s", "kill -9 → first suspicion", "s"),
    ("failed_everywhere_s", "kill -9 → failed everywhere", "s"),
    ("left_everywhere_s", "leave → left everywhere", "s"),
    ("restart_alive_everywhere_s", "restart → alive everywhere", "s"),
    ("rss_mb", "idle RSS per node", "MB"),
    ("cpu_percent", "idle CPU per node", "% of a core"),
    ("bytes_out_per_s", "bytes sent per node", "B/s"),
)
"""(key in a run, label, unit) of every figure; per-node figures are lists in a run."""


def run_value(run: dict[str, Any], key: str) -> float:
    """A run's figure: the number itself, or the median over nodes of a per-node list."""
    value = run[key]
    if isinstance(value, list):
        return float(statistics.median(value))
    return float(value)


def summarise(runs: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """Per N: median, min and max over runs of every figure, and the false alarms."""
    summary: dict[str, Any] = {}
    for n in sizes:
        group = [r for r in runs if r["nodes"] == n]
        if not group:
            continue
        row: dict[str, Any] = {"runs": len(group)}
        for key, _label, _unit in FIGURES:
            row[key] = spread([run_value(r, key) for r in group])
        row["threads"] = spread([run_value(r, "threads") for r in group])
        row["false_suspicions"] = sum(int(r["false_suspicions"]) for r in group)
        row["false_failures"] = sum(int(r["false_failures"]) for r in group)
        summary[str(n)] = row
    return summary


def _cell(figure: dict[str, float], digits: int) -> str:
    return (f"{figure['median']:.{digits}f} ({figure['min']:.{digits}f}–"
            f"{figure['max']:.{digits}f})")


def markdown(report: dict[str, Any]) -> str:
    """The summary as a Markdown table: median (min–max) over the runs of each N."""
    digits = {"s": 2, "MB": 1, "% of a core": 2, "B/s": 0}
    head = ["N"] + [f"{label} ({unit})" for _key, label, unit in FIGURES]
    head += ["threads per node", "false suspicions / failures"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, row in report["summary"].items():
        cells = [n] + [_cell(row[key], digits[unit]) for key, _label, unit in FIGURES]
        cells += [_cell(row["threads"], 0),
                  f"{row['false_suspicions']} / {row['false_failures']}"]
        lines.append("| " + " | ".join(cells) + " |")
    counts = sorted({row["runs"] for row in report["summary"].values()})
    loads = [r["load_1m_at_start"] for r in report["runs"] if "load_1m_at_start" in r]
    load_note = (f"1-minute load average at the start of the runs {min(loads):.2f}–"
                 f"{max(loads):.2f}" if loads else "")
    lines.append("")
    lines.append(
        f"Median (min–max) of {'/'.join(str(c) for c in counts)} run(s) per N; preset "
        f"`{report['preset']}`; launches one after the other, each after the previous "
        f"node's ready line, once every node logged it alive, plus {report['stagger_s']} s; "
        f"idle window {report['idle_s']} s; "
        f"per-node figures are the median over the nodes of a run; "
        f"{report['machine']['cpus']} CPUs; {load_note}.")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per figure against N, and ``suite.png`` with all of them; [] (and a note on
    stdout) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    sizes = [int(n) for n in report["summary"]]
    rows = list(report["summary"].values())
    written = []
    grid, axes = plt.subplots(2, 4, figsize=(16, 7), squeeze=False)
    for index, (key, label, unit) in enumerate(FIGURES):
        medians = [row[key]["median"] for row in rows]
        below = [row[key]["median"] - row[key]["min"] for row in rows]
        above = [row[key]["max"] - row[key]["median"] for row in rows]
        single, ax = plt.subplots(figsize=(5, 3.5))
        for target in (ax, axes[index // 4][index % 4]):
            target.errorbar(sizes, medians, yerr=[below, above], marker="o", capsize=4)
            target.set_xlabel("nodes (N)")
            target.set_ylabel(unit)
            target.set_title(label, fontsize=10)
            target.set_xticks(sizes)
            target.set_ylim(bottom=0)
            target.grid(alpha=0.3)
        single.tight_layout()
        path = out_dir / f"{key}.png"
        single.savefig(path, dpi=100)
        plt.close(single)
        written.append(path)
    grid.suptitle(f"dynago, real processes on one {report['machine']['cpus']}-CPU machine "
                  f"(preset {report['preset']}; median, bars min–max of "
                  f"{max(row['runs'] for row in rows)} runs)")
    grid.tight_layout()
    path = out_dir / "suite.png"
    grid.savefig(path, dpi=100)
    plt.close(grid)
    written.append(path)
    return written


def write_reports(report: dict[str, Any], out_dir: Path, *, plots: bool = True) -> list[Path]:
    """``suite.json``, ``suite.md`` and (optionally) the plots in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "suite.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = out_dir / "suite.md"
    md_path.write_text(markdown(report))
    written = [json_path, md_path]
    if plots:
        written += plot(report, out_dir)
    return written
