"""What the security options cost: join time and idle CPU, plaintext vs cluster key vs mTLS.

    python -m bench.security [--runs 3] [--idle-s 10] [--preset lan]
                             [--out bench-results/security.json]

For each mode, in every run (modes interleaved, so that they share the machine's state):
a 3-node star (B and C seed from A) of real node processes on 127.0.0.1. Join time is
from the moment the last node's process is started until every node's ``GET /members``
lists all three (polled every 20 ms); then the cluster is left idle for ``--idle-s``
seconds and each node's CPU use (utime + stime from /proc) is taken over that window.
Reports the median over the runs. Keys and certificates are made fresh in a temporary
directory (cluster key: 32 random bytes; mTLS: an EC P-256 CA and node certificates with
SAN DNS:dynago, made with ``cryptography``, a test extra). Launches are sequential, each
waiting for the previous node's ready line, as in bench.join.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.procstat import idle_cpu_percent
from dynago.launch import NodeProcess, wait_until

MODES = ("plaintext", "cluster-key", "mtls")


def _write_tls(directory: Path, names: list[str]) -> dict[str, list[str]]:
    """A CA and one certificate per node; returns each node's --tls-* flags."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("bench CA")).issuer_name(name("bench CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    flags = {}
    for node in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(node)).issuer_name(name("bench CA"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(hours=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("dynago")]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path, key_path = directory / f"{node}.crt", directory / f"{node}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        flags[node] = ["--tls-cert", str(cert_path), "--tls-key", str(key_path),
                       "--tls-ca", str(ca_path)]
    return flags


def _mode_flags(mode: str, directory: Path, names: list[str]) -> dict[str, list[str]]:
    if mode == "plaintext":
        return {node: [] for node in names}
    if mode == "cluster-key":
        path = directory / "cluster.key"
        path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        return {node: ["--cluster-key-file", str(path)] for node in names}
    return _write_tls(directory, names)


def run_star(mode: str, preset: str, idle_s: float) -> dict[str, object]:
    names = ["a", "b", "c"]
    nodes: list[NodeProcess] = []
    with tempfile.TemporaryDirectory(prefix="dynago-bench-sec-") as tmp:
        flags = _mode_flags(mode, Path(tmp), names)
        try:
            for node_name in names:
                seeds = ["--seed", nodes[0].address] if nodes else []
                node = NodeProcess(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                    "--preset", preset, "--name", node_name, *seeds,
                                    *flags[node_name]])
                nodes.append(node)
                node.wait_ready()
            expected = sorted(node.address for node in nodes)
            wait_until(lambda: all(sorted(nd.members()) == expected for nd in nodes),
                       timeout_s=30, interval_s=0.02, what=f"{mode} star convergence")
            joined_s = time.monotonic() - nodes[-1].started_at
            cpu, elapsed = idle_cpu_percent(nodes, idle_s)
            still = all(sorted(nd.members()) == expected for nd in nodes)
            return {
                "mode": mode,
                "join_s": round(joined_s, 3),
                "idle_cpu_percent": [round(c, 2) for c in cpu],
                "idle_s": round(elapsed, 2),
                "still_converged_after_idle": still,
            }
        finally:
            for node in reversed(nodes):
                node.terminate()
                node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--preset", choices=("lan", "local"), default="lan")
    parser.add_argument("--out", default="bench-results/security.json")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    for run in range(args.runs):
        for mode in MODES:
            result = run_star(mode, args.preset, args.idle_s)
            result["run"] = run + 1
            runs.append(result)
            print(f"run {run + 1} {mode:<12} join {result['join_s']:.3f} s, idle CPU % "
                  f"{result['idle_cpu_percent']}", flush=True)
    summary: dict[str, dict[str, object]] = {}
    for mode in MODES:
        rows = [r for r in runs if r["mode"] == mode]
        joins = [float(r["join_s"]) for r in rows]  # type: ignore[arg-type]
        per_node = [statistics.median(float(r["idle_cpu_percent"][i])  # type: ignore[index]
                                      for r in rows) for i in range(3)]
        summary[mode] = {
            "join_median_s": round(statistics.median(joins), 3),
            "join_min_s": min(joins), "join_max_s": max(joins),
            "idle_cpu_percent_per_node_median": [round(v, 2) for v in per_node],
            "idle_cpu_percent_node_mean": round(statistics.mean(per_node), 2),
            "runs": len(rows),
        }
    report = {"preset": args.preset, "idle_s": args.idle_s, "summary": summary, "runs": runs,
              "machine": {"cpus": os.cpu_count()}}
    print(f"\n{'mode':<13}{'join median s':>14}{'min':>8}{'max':>8}   idle CPU % per node "
          f"(median of {args.runs})")
    for mode, row in summary.items():
        print(f"{mode:<13}{row['join_median_s']:>14.3f}{row['join_min_s']:>8.3f}"
              f"{row['join_max_s']:>8.3f}   {row['idle_cpu_percent_per_node_median']} "
              f"(mean {row['idle_cpu_percent_node_mean']})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
