"""Separate network hosts on one Linux machine: one network namespace per host, joined by a private bridge.

Each host gets its own network stack (loopback + one veth into the bridge) and one address in a private
/24 that exists only on that bridge; the root namespace gets the bridge's own address in the same /24, so
a process here can reach every host and nothing else changes on the machine. No route leaves the bridge.

    hosts = NetnsHosts(["h1", "h2"])          # names are prefixed with PREFIX; addresses 10.231.0.1, .2
    hosts.create()
    hosts.popen("h1", ["python", "-m", "http.server"])   # runs inside host h1's namespace
    hosts.cut("h2")                            # link down: h2 drops off the network, its processes live on
    hosts.reconnect("h2")                      # link up again
    hosts.teardown()                           # idempotent: kills every process in our namespaces, deletes all

Everything this module makes carries PREFIX, and `teardown` removes exactly that (also leftovers of an
earlier run that died), so it never touches another namespace, link or process. Needs root and `ip`.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

PREFIX = "ssn"                       # namespaces ssn-h1..., bridge ssn-br, host-side veths ssn-h1...
BRIDGE = f"{PREFIX}-br"
SUBNET = ipaddress.ip_network("10.231.0.0/24")
BRIDGE_ADDRESS = SUBNET.network_address + 254


class NamespacesUnavailable(RuntimeError):
    """This machine does not let us make network namespaces (not root, no `ip`, or unshare forbidden)."""


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can (checked by making one)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}-p{os.getpid()}"          # per process: test workers collect (and probe) at once
    _run(["ip", "netns", "del", probe], check=False)
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip() or made.returncode}"
    try:
        link = _run(["ip", "link", "add", probe, "type", "veth", "peer", "name", "eth0",
                     "netns", probe], check=False)
        if link.returncode != 0:
            return f"veth pairs are not permitted here: {link.stderr.strip() or link.returncode}"
    finally:
        _run(["ip", "link", "del", probe], check=False)
        _run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass(frozen=True)
class Host:
    name: str              # short name, e.g. "h1"
    namespace: str         # ssn-h1
    address: str           # 10.231.0.1
    veth: str              # the host-side end in the root namespace (on the bridge)


class NetnsHosts:
    """A set of hosts, one namespace each, on a private bridge. Use `with` or call `teardown` in `finally`."""

    def __init__(self, names: list[str]) -> None:
        self.hosts: dict[str, Host] = {}
        for i, name in enumerate(names, start=1):
            self.add_host_spec(name, i)

    def add_host_spec(self, name: str, number: int) -> Host:
        if not name.isalnum() or len(name) > 8:
            raise ValueError(f"host name {name!r} must be alphanumeric, at most 8 characters")
        host = Host(name, f"{PREFIX}-{name}", str(SUBNET.network_address + number), f"{PREFIX}-{name}")
        self.hosts[name] = host
        return host

    def __enter__(self) -> NetnsHosts:
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def create(self) -> None:
        """Clean leftovers, then make the bridge and every host."""
        reason = unavailable_reason()
        if reason:
            raise NamespacesUnavailable(reason)
        teardown_all()
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        for host in self.hosts.values():
            self._make(host)

    def add(self, name: str) -> Host:
        """A new host on the running bridge (e.g. a replacement for a lost one)."""
        host = self.add_host_spec(name, len(self.hosts) + 1)
        self._make(host)
        return host

    def _make(self, host: Host) -> None:
        _run(["ip", "netns", "add", host.namespace])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace])
        _run(["ip", "link", "set", host.veth, "master", BRIDGE])
        _run(["ip", "link", "set", host.veth, "up"])
        inside = ["ip", "netns", "exec", host.namespace]
        _run(inside + ["ip", "link", "set", "lo", "up"])
        _run(inside + ["ip", "addr", "add", f"{host.address}/{SUBNET.prefixlen}", "dev", "eth0"])
        _run(inside + ["ip", "link", "set", "eth0", "up"])

    def command(self, name: str, argv: list[str]) -> list[str]:
        """`argv` wrapped to run inside host `name`'s namespace."""
        return ["ip", "netns", "exec", self.hosts[name].namespace, *argv]

    def run(self, name: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, argv), capture_output=True, text=True, **kwargs)

    def popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(name, argv), **kwargs)

    def pids(self, name: str) -> list[int]:
        """Every process running in host `name`'s namespace."""
        return namespace_pids(self.hosts[name].namespace)

    def cut(self, name: str) -> None:
        """Take host `name` off the network (its veth link down): a partition, as a pulled cable."""
        _run(["ip", "link", "set", self.hosts[name].veth, "down"])

    def reconnect(self, name: str) -> None:
        """Undo `cut`: host `name`'s link up again."""
        _run(["ip", "link", "set", self.hosts[name].veth, "up"])

    def kill(self, name: str) -> None:
        """Power host `name` off: SIGKILL every process in its namespace."""
        kill_namespace(self.hosts[name].namespace)

    def teardown(self) -> None:
        teardown_all()


def namespace_pids(namespace: str) -> list[int]:
    out = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in out.stdout.split()] if out.returncode == 0 else []


def kill_namespace(*namespaces: str, grace_s: float = 3.0) -> None:
    """SIGTERM every process in the namespaces, then SIGKILL what is left after `grace_s`."""
    def alive() -> list[int]:
        return [pid for ns in namespaces for pid in namespace_pids(ns)]

    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        pids = alive()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while pids and time.time() < deadline:
            time.sleep(0.1)
            pids = alive()
        if not pids:
            return


def teardown_all() -> None:
    """Idempotent: stop every process in our namespaces, delete them, our veths and the bridge."""
    listed = _run(["ip", "netns", "list"], check=False).stdout.split("\n")
    namespaces = [line.split()[0] for line in listed if line.startswith(f"{PREFIX}-")]
    kill_namespace(*namespaces)
    for ns in namespaces:
        _run(["ip", "netns", "del", ns], check=False)
    links = _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"{PREFIX}-"):
            _run(["ip", "link", "del", name], check=False)


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr.strip()}")
    return out
