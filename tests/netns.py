"""Separate network hosts for tests: Linux network namespaces on a private bridge.

`Network` makes a "switch" namespace holding a bridge, and one namespace per host, each joined
to the bridge by a veth pair and given an address in 10.213.<n>.0/24. The bridge and the range
exist only inside these namespaces: the machine's own network never sees them. Processes run in a
host through `ip netns exec`, each in a session of its own so that it can be stopped with all its
children. `close()` stops every process and deletes every namespace (which takes the veth pairs
and the bridge with it); it runs on failure too, and stale namespaces of dead test runs are
removed the next time a `Network` starts. Needs root and iproute2.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "spmh"  # every namespace we create: spmh<pid>-<name>


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return "ip netns add is not permitted here"
    _ip("netns", "del", probe, check=False)
    return None


def remove_stale() -> None:
    """Delete namespaces left behind by test runs whose process is gone (a kill -9 of pytest)."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.fullmatch(rf"{PREFIX}(\d+)-\S+", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)


def _kill_namespace_processes(namespace: str) -> None:
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Host:
    """One namespace with an address; `popen()` runs a process in it."""

    def __init__(self, network: Network, name: str, address: str):
        self.network, self.name, self.address = network, name, address
        self.namespace = f"{network.prefix}-{name}"
        self.procs: list[subprocess.Popen] = []

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.namespace, *cmd], start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("check", True)
        return subprocess.run(["ip", "netns", "exec", self.namespace, *cmd], **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop this host's processes (their whole process groups), SIGKILL after `timeout`."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        self.procs = []

    def destroy(self) -> None:
        """Pull the plug: kill everything in the namespace at once and delete it (the host is gone)."""
        self.stop(signal.SIGKILL, timeout=5)
        _kill_namespace_processes(self.namespace)
        _ip("netns", "del", self.namespace, check=False)
        self.network.hosts.pop(self.name, None)


class Network:
    """A bridge in a namespace of its own and hosts attached to it (10.213.<subnet>.0/24)."""

    def __init__(self, subnet: int | None = None):
        remove_stale()
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.subnet = subnet if subnet is not None else 100 + os.getpid() % 100
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, Host] = {}
        self._veths = 0
        _ip("netns", "add", self.switch)
        try:
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip("-n", self.switch, "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        number = len(self.hosts) + 10
        host = Host(self, name, f"10.213.{self.subnet}.{number}")
        self.hosts[name] = host
        self._veths += 1
        outside, inside = f"v{os.getpid() % 100000}s{self._veths}", f"v{os.getpid() % 100000}h{self._veths}"
        _ip("netns", "add", host.namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", outside, "netns", self.switch)
        _ip("link", "set", inside, "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", outside, "master", "br0")
        _ip("-n", self.switch, "link", "set", outside, "up")
        _ip("-n", host.namespace, "link", "set", inside, "name", "eth0")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in list(self.hosts.values()):
            host.stop(timeout=10)
        for host in list(self.hosts.values()):
            _kill_namespace_processes(host.namespace)
            _ip("netns", "del", host.namespace, check=False)
        self.hosts.clear()
        _ip("netns", "del", self.switch, check=False)

    def leftovers(self) -> list[str]:
        """Namespaces of this network that still exist (empty after close())."""
        names = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.prefix + "-")]
