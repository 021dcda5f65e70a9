"""Several hosts on one machine: Linux network namespaces on a private subnet the test makes.

Each host is a network namespace with its own loopback and one veth link into a "switch"
namespace, where a bridge joins them, so the hosts reach each other only by their
addresses on the subnet. The bridge lives in a namespace of its own rather than in the
machine's, whose firewall may filter bridged traffic. The test process itself (in the
machine's namespace) gets one more link into the switch, at .254, to act as the clients.

The subnet, 10.213.N.0/24, is chosen among the ones no route of the machine touches, and
exists only inside these namespaces and on the test's own link. Every name carries the
test process's pid, so a run can remove what a killed run left behind.
"""

import ipaddress
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Dict, List

PREFIX = "cdk"
NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_permitted() -> bool:
    """Whether this sandbox lets us make network namespaces (needs root and CAP_SYS_ADMIN)."""
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        if ip("netns", "add", probe, check=False).returncode != 0:
            return False
        ip("netns", "del", probe, check=False)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(namespace: str) -> None:
    pids = ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_stale() -> None:
    """Namespaces and links of earlier runs whose test process is gone."""
    pattern = re.compile(rf"^{PREFIX}(\d+)-")
    if NETNS_DIR.exists():
        for entry in NETNS_DIR.iterdir():
            match = pattern.match(entry.name)
            if match and not _pid_alive(int(match.group(1))):
                _kill_namespace_processes(entry.name)
                ip("netns", "del", entry.name, check=False)
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = re.match(rf"^{PREFIX}(\d+)c$", name)
        if match and not _pid_alive(int(match.group(1))):
            ip("link", "del", name, check=False)


def free_subnet() -> str:
    """The first 10.213.N.0/24 that overlaps none of the machine's routes or addresses."""
    taken = []
    for line in ip("-4", "route", "show", "table", "all").stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        if first and first not in ("default", "broadcast", "local", "unreachable"):
            try:
                taken.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                continue
    start = os.getpid() % 200 + 20
    for offset in range(200):
        candidate = ipaddress.ip_network(f"10.213.{(start + offset) % 250 + 1}.0/24")
        if not any(candidate.overlaps(network) for network in taken):
            return str(candidate.network_address).rsplit(".", 1)[0]
    raise RuntimeError("no free 10.213.N.0/24 subnet")


class Network:
    """Hosts named by role, each with an address on the subnet; `exec` runs a command on one."""

    def __init__(self, hosts: Dict[str, int]):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.subnet = free_subnet()
        self.addresses = {name: f"{self.subnet}.{number}" for name, number in hosts.items()}
        self.client_address = f"{self.subnet}.254"
        self.client_link = f"{self.tag}c"
        self.switch = f"{self.tag}-switch"
        self.made: List[str] = []

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def exec(self, host: str) -> List[str]:
        return ["ip", "netns", "exec", self.namespace(host)]

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def create(self) -> "Network":
        remove_stale()
        self._add_namespace(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for number, (host, address) in enumerate(self.addresses.items()):
            namespace = self.namespace(host)
            self._add_namespace(namespace)
            port = f"port{number}"
            # Made straight inside the two namespaces: no name is ever taken on the machine.
            ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", port, "netns", self.switch)
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip("link", "add", self.client_link, "type", "veth", "peer", "name", "client", "netns", self.switch)
        ip("addr", "add", f"{self.client_address}/24", "dev", self.client_link)
        ip("link", "set", self.client_link, "up")
        ip("-n", self.switch, "link", "set", "client", "master", "br0", "up")
        return self

    def net_namespace_of(self, pid: int) -> str:
        return os.readlink(f"/proc/{pid}/ns/net")

    def destroy(self) -> None:
        """Removes everything made, even after a failure half-way; kills what still runs inside."""
        ip("link", "del", self.client_link, check=False)
        for namespace in reversed(self.made):
            _kill_namespace_processes(namespace)
            ip("netns", "del", namespace, check=False)
        self.made.clear()
