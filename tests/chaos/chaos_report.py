"""The figures of a chaos run: one record per scenario, written as JSON and as a table.

A scenario fills its record as it goes (so a scenario that fails still reports what it
measured), the conftest marks each record passed or failed, writes the JSON file at the
end of the session (``bench-results/chaos.json``, or the path in ``DYNAGO_CHAOS_REPORT``)
and prints the table.

Standard figures (seconds, or counts; None = did not happen):

* ``first_suspicion_s`` — fault until the first node suspected (or failed) a cut-off member;
* ``detection_s`` — fault until every node that should lost a member holds it failed;
* ``heal_s`` — heal (link up, rules removed, resume, restart) until every node lists
  every member alive again;
* ``false_suspicions`` / ``false_failures`` — suspicions and failures of members that
  the observer could still reach (or any at all where none are expected).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STANDARD = ("first_suspicion_s", "detection_s", "heal_s", "false_suspicions",
            "false_failures")

DEFAULT_PATH = "bench-results/chaos.json"


@dataclass
class Scenario:
    """The record of one scenario."""

    name: str
    expectation: str
    nodes: int
    preset: str
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"
    duration_s: float = 0.0

    def __setitem__(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]

    def update(self, values: dict[str, Any]) -> None:
        self.figures.update(values)


@dataclass
class ChaosReport:
    """Every scenario record of this session, in the order they ran."""

    scenarios: dict[str, Scenario] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def scenario(self, test_id: str, name: str, expectation: str, nodes: int,
                 preset: str) -> Scenario:
        record = Scenario(name, expectation, nodes, preset)
        self.scenarios[test_id] = record
        return record

    def path(self) -> Path:
        return Path(os.environ.get("DYNAGO_CHAOS_REPORT", DEFAULT_PATH))

    def write(self) -> Path:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "python": platform.python_version(),
                        "load_avg_at_start": [round(x, 2) for x in self.load_at_start],
                        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
            "scenarios": [
                {"scenario": s.name, "expectation": s.expectation, "nodes": s.nodes,
                 "preset": s.preset, "outcome": s.outcome,
                 "duration_s": round(s.duration_s, 1), "figures": s.figures}
                for s in self.scenarios.values()
            ],
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path

    def table(self) -> str:
        """A fixed-width table: one row per scenario, standard figures, then the rest."""
        header = ("scenario", "result", "first susp. s", "detected s", "healed s",
                  "false susp.", "false fail.", "other figures")
        rows = [header]
        for s in self.scenarios.values():
            other = ", ".join(f"{key}={_cell(value)}" for key, value in s.figures.items()
                              if key not in STANDARD)
            rows.append((s.name, s.outcome, *(_cell(s.figures.get(k)) for k in STANDARD),
                         other))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = []
        for row in rows:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) + "}"
    return str(value)
