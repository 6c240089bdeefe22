"""Partition and heal of 4 real nodes: {a,b} | {c,d} cut both ways by fault injection.

    python -m bench.partition [--runs 3] [--preset lan] [--out ...]

Measures (median, min–max over runs): time from the cut until each side marks the other
failed everywhere, and time from the heal until all four list all four alive (polled
every 50 ms on every node's /members).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

from dynago.launch import NodeProcess, wait_until


def post_faults(http: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(f"http://{http}/v1/faults", method="POST",
                                     data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def run_once(preset: str) -> dict[str, float]:
    nodes: list[NodeProcess] = []
    try:
        for name in "abcd":
            seed = ["--seed", nodes[0].address] if nodes else []
            node = NodeProcess(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                "--preset", preset, "--name", name,
                                "--enable-fault-injection", *seed])
            nodes.append(node)
            node.wait_ready()
        everyone = sorted(node.address for node in nodes)
        wait_until(lambda: all(sorted(n.members()) == everyone for n in nodes),
                   timeout_s=30, what="join")
        sides = {"a": "cd", "b": "cd", "c": "ab", "d": "ab"}
        cut_at = time.monotonic()
        for node in nodes:
            for other in sides[node.name]:
                post_faults(node.http, {"cut": {"node": other, "direction": "both"}})

        def split() -> bool:
            for node in nodes:
                status = {m["name"]: m["status"] for m in node.members_v1()}
                if any(status.get(other) != "failed" for other in sides[node.name]):
                    return False
            return True

        wait_until(split, timeout_s=60, interval_s=0.05, what="both sides failed")
        detected = time.monotonic() - cut_at
        healed_at = time.monotonic()
        for node in nodes:
            post_faults(node.http, {"heal": True})
        wait_until(lambda: all(sorted(n.members()) == everyone for n in nodes),
                   timeout_s=60, interval_s=0.05, what="heal")
        return {"split_detected_s": round(detected, 3),
                "heal_s": round(time.monotonic() - healed_at, 3)}
    finally:
        for node in nodes:
            node.terminate()
            node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", choices=("lan", "local"), default="lan")
    parser.add_argument("--out", default="bench-results/partition.json")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(run_once(args.preset))
        print(f"run {i + 1}: {runs[-1]}", flush=True)
    summary = {}
    for key in ("split_detected_s", "heal_s"):
        values = [r[key] for r in runs]
        summary[key] = {"median": statistics.median(values), "min": min(values),
                        "max": max(values)}
    report = {"preset": args.preset, "summary": summary, "runs": runs}
    print(json.dumps(summary, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
