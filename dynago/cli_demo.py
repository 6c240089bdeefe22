"""``dynago demo``'s key-value step: write a key through one node, read it from another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEMO_KEY = "demo-key"


def demo_key_value(writer: Any, reader: Any, *, timeout_s: float = 10.0,
                   nodes: Sequence[Any] = ()) -> None:
    """Write a key through ``writer`` (POST /kvstore), read it from ``reader`` (objects
    with ``name`` and ``http``, e.g. NodeProcess) and print both; raise LaunchError if
    the read does not give back what was written within ``timeout_s``. With ``nodes``,
    first wait until each of them has every one of them in its ring (a node that just
    joined is in everyone's member list a little before it is in everyone's ring), so
    that all agree on the key's first replica."""
    from dynago.launch import LaunchError, error_reason, http_json, wait_until

    if nodes:
        names = {node.name for node in nodes}

        def rings_agree() -> bool:
            for node in nodes:
                try:
                    ring = http_json(node.http, "/v1/ring", timeout_s=5.0)
                except (OSError, ValueError):
                    return False
                if {m.get("name") for m in ring.get("members", [])} != names:
                    return False
            return True

        wait_until(rings_agree, timeout_s=timeout_s, what="every node's ring to hold all")
    value = f"hello from {writer.name}"
    try:
        stored = http_json(writer.http, "/kvstore", method="POST", timeout_s=5.0,
                           body={"Key": DEMO_KEY, "Value": value})
    except (OSError, ValueError) as error:
        raise LaunchError(f"writing {DEMO_KEY!r} through {writer.name} failed: "
                          f"{error_reason(error)}") from None
    print(f"wrote {DEMO_KEY}={value!r} through {writer.name} "
          f"(first replica: {stored.get('node')})")
    seen: list[Any] = []

    def read_back() -> Any:
        answer = http_json(reader.http, f"/kvstore/{DEMO_KEY}", timeout_s=5.0)
        seen.append(answer)
        return answer if answer.get("value") == value else None

    try:
        # Polled: the reader's ring may still be catching up with the last join.
        got = wait_until(read_back, timeout_s=timeout_s,
                         what=f"{reader.name} to read {DEMO_KEY}")
    except LaunchError as error:
        last = f"it answered {seen[-1]}" if seen else str(error)
        raise LaunchError(f"reading {DEMO_KEY!r} from {reader.name} did not give back "
                          f"{value!r} written through {writer.name}: {last}") from None
    print(f"read {DEMO_KEY}={got['value']!r} from {reader.name} (node: {got.get('node')})")


