"""The table and plots of ``bench.kv``: one row per (workload, clients, system)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HEAD = ("workload", "clients", "system", "ops/s", "p50 ms", "p99 ms", "p99.9 ms",
        "CPU us/op", "gen CPU %", "errors", "ops/s ÷ dynago", "ops/s ÷ dynago-1")


def _ratio(row: dict[str, Any], field: str) -> str:
    found = row.get(field)
    return f"{found['ops_per_s']:.2f}" if found else "—"


def cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["workload"], str(row["clients"]), row["system"], f"{row['ops_per_s']:.0f}",
            f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row['p999_ms']:.2f}",
            f"{row['server_cpu_us_per_op']:.0f}", f"{row['generator_cpu_percent']:.0f}",
            str(row["errors"]), _ratio(row, "vs_dynago"), _ratio(row, "vs_dynago_1"))


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (the header line starts with ``workload``)."""
    lines = [HEAD] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEAD))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: what ran, then the table."""
    out = [f"`{report['command']}`", ""]
    if report.get("note"):
        out += [report["note"], ""]
    for name, system in report["systems"].items():
        version = f" ({system['version']})" if system.get("version") else ""
        out.append(f"* **{name}**{version}: {system['describe']}; load "
                   f"{system['load']['ops_per_s']:.0f} puts/s")
    for reason in report["skipped"].values():
        out.append(f"* {reason}")
    calibration = report.get("calibration")
    if calibration:
        out.append(f"* generator check, reads only against Redis, {calibration['clients']} "
                   f"clients: this generator {calibration['generator_ops_per_s']:.0f} ops/s "
                   f"at {calibration['generator_cpu_percent']:.0f} % CPU; redis-benchmark "
                   f"{calibration.get('redis_benchmark_ops_per_s')} ops/s")
    out += [f"* {report['keys']} keys ({report['key_choice']}), {report['value_bytes']}-byte "
            f"values, {report['seconds']:g} s per system per cell; 1-minute load "
            f"{report['load_1m_at_start']} at start, {report.get('load_1m_at_end')} at end; "
            f"{report['machine']['cpus']} CPUs", ""]
    out.append("| " + " | ".join(HEAD) + " |")
    out.append("|" + "---|" * len(HEAD))
    out += ["| " + " | ".join(cells(r)) + " |" for r in report["rows"]]
    return "\n".join(out) + "\n"


def plot(report: dict[str, Any], out: Path) -> list[Path]:
    """Throughput and p99 against clients, a line per system, a panel per workload (PNG);
    nothing when matplotlib is not installed (``pip install -e '.[bench]'``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    rows = report["rows"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    written = []
    for field, label in (("ops_per_s", "ops/s"), ("p99_ms", "p99 latency (ms)")):
        figure, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.6),
                                    squeeze=False)
        for axis, workload in zip(axes[0], workloads, strict=True):
            for system in systems:
                points = sorted((r["clients"], r[field]) for r in rows
                                if r["workload"] == workload and r["system"] == system)
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                          label=system)
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_title(f"workload {workload}")
            axis.set_xlabel("clients")
            axis.set_ylabel(label)
            axis.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        figure.tight_layout()
        path = out / f"kv_{field}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)
    return written
