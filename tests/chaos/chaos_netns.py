"""Network namespaces for the chaos tests: one namespace per node, one bridge, faults.

Layout of one ``ChaosNet`` (``hosts`` namespaces)::

    root namespace: bridge <tag>br  198.18.X.254/24   (the observer: the test process)
        |-- veth <tag>h1 <-> eth0 in namespace <tag>n1   198.18.X.1/24
        |-- veth <tag>h2 <-> eth0 in namespace <tag>n2   198.18.X.2/24
        ...

Every name starts with ``dgc<pid in base 36>-<net number>`` (at most 15 characters, the
kernel's limit for link names), so concurrent runs never collide and leftovers of a run
whose process is gone are recognised and removed (``reap_leftovers``). Each net takes a
/24 of 198.18.0.0/15 that no address of the root namespace is in yet.

Faults (all silent: packets are dropped, never rejected, so no RST and no ICMP reaches
the sender):

* ``cut_link`` / ``restore_link`` — the host's bridge port down / up: nothing passes
  either way, the admin API included.
* ``drop`` — nftables rules inside the host's namespace dropping its packets *to*
  (``out``), *from* (``in``) or both ways of some peers; ``partition`` does that for
  groups; ``blackhole`` drops every packet to and from the other hosts but keeps the
  observer's admin API traffic, so the node's own view stays readable.
* ``heal`` — removes the host's nftables rules.

Everything a net creates is removed by ``close()``, which the fixtures call in their
finalizers; an ``atexit`` hook closes any net still open when the interpreter exits.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NFT_TABLE = "dynago_chaos"
"""Name of the nftables table (family inet) inside each node's namespace."""

_TAG_RE = re.compile(r"^dgc([0-9a-z]+)-")


class NetnsError(RuntimeError):
    """A namespace, link, address or nftables command failed; the message has its stderr."""


def run(command: Sequence[str], *, stdin: str | None = None, check: bool = True,
        timeout_s: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run one ``ip``/``nft`` command; raise NetnsError with its stderr if it fails."""
    try:
        done = subprocess.run(list(command), input=stdin, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetnsError(f"{' '.join(command)}: {error}") from None
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(command)} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()}")
    return done


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def run_tag(pid: int | None = None) -> str:
    """Prefix of every name this process creates: ``dgc<pid base 36>``."""
    return f"dgc{_base36(os.getpid() if pid is None else pid)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_leftovers() -> list[str]:
    """Delete namespaces and links named by a chaos run whose process no longer exists
    (a run killed before its finalizers ran). Returns what was deleted."""
    removed = []
    namespaces = run(["ip", "netns", "list"], check=False).stdout.split()
    links = [line.split(":")[1].strip().split("@")[0]
             for line in run(["ip", "-o", "link", "show"], check=False).stdout.splitlines()
             if line.count(":") >= 2]
    for kind, names in (("netns", namespaces), ("link", links)):
        for name in names:
            match = _TAG_RE.match(name)
            if not match or _pid_alive(int(match[1], 36)):
                continue
            command = (["ip", "netns", "delete", name] if kind == "netns"
                       else ["ip", "link", "delete", name])
            if run(command, check=False).returncode == 0:
                removed.append(f"{kind} {name}")
    return removed


def preflight() -> None:
    """Prove this machine can run the chaos tests: create a namespace, a veth pair and an
    nftables table inside the namespace, then remove them. Raises NetnsError naming what
    is missing (not root, no ``ip``/``nft``, no namespace support)."""
    if os.geteuid() != 0:
        raise NetnsError(f"the chaos tests need root to create network namespaces "
                         f"(running as uid {os.geteuid()})")
    tag = f"{run_tag()}-pf"
    namespace, veth = f"{tag}n", f"{tag}h"
    try:
        run(["ip", "netns", "add", namespace])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
             "netns", namespace])
        run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], stdin=_nft_table_script())
    except NetnsError as error:
        raise NetnsError(f"cannot set up a network namespace with nftables: {error} "
                         "(the chaos tests need root, iproute2 and nftables: "
                         "apt-get install iproute2 nftables)") from None
    finally:
        run(["ip", "link", "delete", veth], check=False)
        run(["ip", "netns", "delete", namespace], check=False)


def _nft_table_script() -> str:
    return (f"table inet {NFT_TABLE} {{\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n")


@dataclass(frozen=True)
class Host:
    """One node's namespace: its number (1-based), namespace, bridge port and address."""

    index: int
    namespace: str
    veth: str
    ip: str

    def exec_prefix(self) -> list[str]:
        """Command prefix that runs a program inside this host's namespace (it execs)."""
        return ["ip", "netns", "exec", self.namespace]


_open_nets: list[ChaosNet] = []
_lock = threading.Lock()
_net_counter = 0


def _close_open_nets() -> None:
    for net in list(_open_nets):
        net.close()


atexit.register(_close_open_nets)


def _used_subnets() -> set[int]:
    """Third octets of the 198.18.X.0/24 networks that root-namespace addresses are in."""
    used = set()
    for line in run(["ip", "-4", "-o", "addr", "show"], check=False).stdout.splitlines():
        match = re.search(r"inet (198\.18\.(\d+)\.\d+)/", line)
        if match:
            used.add(int(match[2]))
    return used


class ChaosNet:
    """``hosts`` namespaces on one bridge; see the module docstring."""

    def __init__(self, hosts: int) -> None:
        global _net_counter
        if not 1 <= hosts <= 250:
            raise ValueError(f"hosts must be between 1 and 250, got {hosts}")
        with _lock:
            _net_counter += 1
            number = _net_counter
        self.tag = f"{run_tag()}-{_base36(number)}"
        self.bridge = f"{self.tag}br"
        self.hosts: list[Host] = []
        self._links: list[str] = []
        self._namespaces: list[str] = []
        self._closed = False
        with _lock:
            _open_nets.append(self)
        try:
            self._build(hosts, number)
        except BaseException:
            self.close()
            raise

    def _build(self, hosts: int, number: int) -> None:
        used = _used_subnets()
        octet = next((x for x in ((os.getpid() * 7 + number + i) % 254 + 1 for i in range(254))
                      if x not in used), None)
        if octet is None:
            raise NetnsError("no free /24 left in 198.18.0.0/16 for a chaos net")
        self.subnet = ipaddress.ip_network(f"198.18.{octet}.0/24")
        self.observer_ip = f"198.18.{octet}.254"
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self._links.append(self.bridge)
        run(["ip", "addr", "add", f"{self.observer_ip}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for index in range(1, hosts + 1):
            host = Host(index, f"{self.tag}n{index}", f"{self.tag}h{index}",
                        f"198.18.{octet}.{index}")
            run(["ip", "netns", "add", host.namespace])
            self._namespaces.append(host.namespace)
            run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
                 "netns", host.namespace])
            self._links.append(host.veth)
            run(["ip", "link", "set", host.veth, "master", self.bridge, "up"])
            inside = host.exec_prefix()
            run([*inside, "ip", "link", "set", "lo", "up"])
            run([*inside, "ip", "addr", "add", f"{host.ip}/24", "dev", "eth0"])
            run([*inside, "ip", "link", "set", "eth0", "up"])
            run([*inside, "nft", "-f", "-"], stdin=_nft_table_script())
            self.hosts.append(host)

    def host(self, index: int) -> Host:
        """Host number ``index`` (1-based)."""
        return self.hosts[index - 1]

    # ------------------------------------------------------------------ faults

    def cut_link(self, host: Host) -> None:
        """Take ``host``'s bridge port down: nothing passes either way until restored."""
        run(["ip", "link", "set", host.veth, "down"])

    def restore_link(self, host: Host) -> None:
        run(["ip", "link", "set", host.veth, "up"])

    def drop(self, host: Host, peers: Iterable[Host], direction: str = "both") -> None:
        """Inside ``host``'s namespace, silently drop its packets to ``peers`` (``out``),
        from them (``in``) or both ways. Rules add up until ``heal``."""
        if direction not in ("out", "in", "both"):
            raise ValueError(f"direction must be out, in or both, got {direction!r}")
        lines = []
        for peer in peers:
            if direction in ("out", "both"):
                lines.append(f"add rule inet {NFT_TABLE} output ip daddr {peer.ip} drop")
            if direction in ("in", "both"):
                lines.append(f"add rule inet {NFT_TABLE} input ip saddr {peer.ip} drop")
        if lines:
            run([*host.exec_prefix(), "nft", "-f", "-"], stdin="\n".join(lines) + "\n")

    def partition(self, *groups: Sequence[Host]) -> None:
        """Drop every packet between hosts of different ``groups``, both ways."""
        for group in groups:
            others = [h for g in groups if g is not group for h in g]
            for host in group:
                self.drop(host, others, "both")

    def blackhole(self, host: Host) -> None:
        """Drop every packet between ``host`` and the other hosts of the net, both ways,
        while its process runs on: its connections hang (no RST, no ICMP). The observer's
        traffic still passes, so its admin API stays readable."""
        net, observer = str(self.subnet), self.observer_ip
        script = (
            f"add rule inet {NFT_TABLE} output ip daddr {net} ip daddr != {observer} drop\n"
            f"add rule inet {NFT_TABLE} input ip saddr {net} ip saddr != {observer} drop\n"
        )
        run([*host.exec_prefix(), "nft", "-f", "-"], stdin=script)

    def heal(self, host: Host) -> None:
        """Remove every nftables rule in ``host``'s namespace."""
        run([*host.exec_prefix(), "nft", "flush", "table", "inet", NFT_TABLE])

    def heal_all(self) -> None:
        for host in self.hosts:
            self.heal(host)
            self.restore_link(host)

    def rules(self, host: Host) -> str:
        """The nftables ruleset in ``host``'s namespace (for failure reports)."""
        return run([*host.exec_prefix(), "nft", "list", "ruleset"], check=False).stdout

    # ------------------------------------------------------------------ cleanup

    def close(self) -> None:
        """Delete every link and namespace this net created (idempotent). Processes
        inside must have been stopped first; deleting a namespace does not kill them."""
        if self._closed:
            return
        self._closed = True
        for link in reversed(self._links):
            run(["ip", "link", "delete", link], check=False)
        for namespace in reversed(self._namespaces):
            run(["ip", "netns", "delete", namespace], check=False)
        with _lock:
            if self in _open_nets:
                _open_nets.remove(self)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this net that still exist (empty after ``close``)."""
        namespaces = set(run(["ip", "netns", "list"], check=False).stdout.split())
        found = [f"netns {n}" for n in self._namespaces if n in namespaces]
        for link in self._links:
            if run(["ip", "link", "show", link], check=False).returncode == 0:
                found.append(f"link {link}")
        return found
