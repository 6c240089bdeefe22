"""Failure detection of real node processes on 127.0.0.1: kill -9, then time to the first
suspicion anywhere and to "failed" on every survivor.

    python -m bench.failure [--nodes 5 20] [--runs 3] [--preset lan] [--out ...]

Each run starts N nodes (sequentially: each waits for the previous one's ready line),
all seeding from the first, waits until all list all, idles 3 s, then SIGKILLs one
member that is not the seed. Times come from the survivors' own INFO log lines ("member X
... is now suspect / failed", millisecond timestamps, same machine clock) minus the time
of the kill. Also counts false suspicions: suspect lines about any member but the victim.
Prints a table (median and min–max over runs) and writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import signal
import statistics
import tempfile
import time
from pathlib import Path

from dynago.launch import NodeProcess, wait_until

LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) INFO \S+: member (?P<name>\S+) "
    r"\((?P<address>[^)]*)\) is now (?P<status>\w+)"
)


def parse_events(path: Path) -> list[tuple[float, str, str]]:
    """(unix time, member name, status) for every membership change logged in ``path``."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        match = LINE.match(line)
        if match:
            moment = datetime.datetime.fromisoformat(match["ts"]).timestamp()
            events.append((moment, match["name"], match["status"]))
    return events


def start_cluster(n: int, preset: str, logdir: Path, stagger_s: float) -> list[NodeProcess]:
    nodes: list[NodeProcess] = []
    for i in range(n):
        seed = ["--seed", nodes[0].address] if nodes else []
        node = NodeProcess(
            ["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--preset", preset,
             "--name", f"n{i:03d}", *seed],
            stderr_path=str(logdir / f"n{i:03d}.log"),
        )
        nodes.append(node)
        node.wait_ready()
        if stagger_s:
            time.sleep(stagger_s)
    expected = sorted(node.address for node in nodes)
    wait_until(lambda: all(sorted(nd.members()) == expected for nd in nodes),
               timeout_s=60, interval_s=0.2, what="join convergence")
    return nodes


def run_once(n: int, preset: str, stagger_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="dynago-bench-") as tmp:
        logdir = Path(tmp)
        nodes = start_cluster(n, preset, logdir, stagger_s)
        try:
            time.sleep(3.0)  # idle before the kill: part of the scenario, not a wait
            victim = nodes[-1]
            survivors = nodes[:-1]
            killed_at = time.time()
            victim.signal(signal.SIGKILL)

            def all_failed() -> bool:
                for node in survivors:
                    events = parse_events(logdir / f"{node.name}.log")
                    if not any(name == victim.name and status == "failed"
                               for _, name, status in events):
                        return False
                return True

            wait_until(all_failed, timeout_s=60, interval_s=0.1,
                       what="every survivor to mark the victim failed")
            suspect_times, failed_times, false_suspicions = [], [], 0
            for node in survivors:
                events = parse_events(logdir / f"{node.name}.log")
                for moment, name, status in events:
                    if name == victim.name and moment >= killed_at - 0.01:
                        if status == "suspect":
                            suspect_times.append(moment - killed_at)
                        elif status == "failed":
                            failed_times.append(moment - killed_at)
                    elif status == "suspect":
                        false_suspicions += 1
            first_signal = min(suspect_times or failed_times)
            return {
                "nodes": n,
                "first_suspicion_s": round(max(0.0, first_signal), 3),
                "failed_everywhere_s": round(max(failed_times), 3),
                "false_suspicions": false_suspicions,
            }
        finally:
            for node in nodes:
                node.terminate()
                node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", choices=("lan", "local"), default="lan")
    parser.add_argument("--stagger-s", type=float, default=0.05)
    parser.add_argument("--out", default="bench-results/failure.json")
    args = parser.parse_args()
    results: dict[str, object] = {"preset": args.preset, "stagger_s": args.stagger_s,
                                  "sizes": {}}
    print(f"{'N':>4} {'first suspicion s':>24} {'failed everywhere s':>24} {'false susp.':>12}")
    for n in args.nodes:
        runs = [run_once(n, args.preset, args.stagger_s) for _ in range(args.runs)]
        first = [float(r["first_suspicion_s"]) for r in runs]  # type: ignore[arg-type]
        failed = [float(r["failed_everywhere_s"]) for r in runs]  # type: ignore[arg-type]
        false = sum(int(r["false_suspicions"]) for r in runs)  # type: ignore[call-overload]
        row = {
            "runs": runs,
            "first_suspicion_median_s": statistics.median(first),
            "first_suspicion_range_s": [min(first), max(first)],
            "failed_everywhere_median_s": statistics.median(failed),
            "failed_everywhere_range_s": [min(failed), max(failed)],
            "false_suspicions": false,
        }
        results["sizes"][str(n)] = row  # type: ignore[index]
        print(f"{n:>4} {statistics.median(first):>10.2f} ({min(first):.2f}-{max(first):.2f})"
              f"{'':>4} {statistics.median(failed):>10.2f} ({min(failed):.2f}-{max(failed):.2f})"
              f"{'':>4} {false:>8}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
