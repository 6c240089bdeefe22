"""``dynago sim``'s arguments and scenario names, with nothing of the simulator imported:
every ``dynago`` command builds the whole parser, and ``dynago node`` must not pay for
the simulator's modules at start (they cost it about 60 ms of imports)."""

from __future__ import annotations

import argparse

SCENARIOS = ("join", "crash", "leave", "partition", "loss")
KV_SCENARIOS = ("kv-crash", "kv-partition", "kv-loss", "kv-mixed")
"""The key-value store's scenarios (dynago.sim.kv_scenarios)."""
DEFAULT_LOSS_RATES = (0.0, 0.01, 0.05, 0.1, 0.2)
DEFAULT_KV_LOSS = 0.1
"""The message loss of kv-loss and kv-mixed when ``--loss`` is 0."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=100, help="cluster size (default 100)")
    parser.add_argument("--duration", type=float, default=60.0, metavar="SECONDS",
                        help="protocol time to simulate (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--scenario", choices=SCENARIOS + KV_SCENARIOS, default="crash",
                        help="what happens (default crash); kv-*: the key-value store "
                             "under crashes, partitions, message loss or all three, judged "
                             "by the history checker")
    parser.add_argument("--preset", choices=("lan", "local"), default="lan",
                        help="protocol timings (default lan)")
    parser.add_argument("--loss", type=float, default=0.0,
                        help="probability that a message is lost (default 0; kv-loss and "
                             f"kv-mixed take {DEFAULT_KV_LOSS} if it is 0)")
    parser.add_argument("--loss-rates", default=",".join(str(r) for r in DEFAULT_LOSS_RATES),
                        metavar="R,R,...", help="loss rates of the loss sweep")
    parser.add_argument("--latency-ms", type=float, default=1.0,
                        help="one-way message latency (default 1 ms)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the nodes (default 1; 2 uses both cores "
                             "here); a run repeats exactly for the same seed and workers")
    parser.add_argument("--no-bytes", action="store_true",
                        help="do not encode messages to count bytes (faster)")
    parser.add_argument("--event-log", metavar="PATH",
                        help="also write every member event of every node to PATH")
    parser.add_argument("--kv-clients", type=int, default=6,
                        help="KV scenarios: simulated clients (default 6)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="KV scenarios: run this many seeds from --seed on and print "
                             "their summary (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON report")
