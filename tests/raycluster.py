"""A real multi-node Ray cluster on this machine, for tests: every node on 127.0.0.1 with
its own ports and its own --temp-dir, so that a node's processes are found (and killed) by
their command lines, one node at a time. Never `ray stop`: it would stop every Ray on the
machine, other tests' included."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def pids_of(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (a node's own temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class Node:
    temp_dir: str
    head: bool
    ports: dict = field(default_factory=dict)
    node_id: str = ""
    first_worker: int = 0  # the first of its 61 worker ports

    def pids(self) -> list[int]:
        return pids_of(self.temp_dir)

    def kill(self) -> None:
        """SIGKILL every process of this node, by pid (raylet, agents, workers)."""
        for _ in range(3):  # a dying raylet may still be forking a worker
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)


class LocalCluster:
    """`ray start --head` plus workers, each with 1 CPU (by default) on 127.0.0.1."""

    def __init__(self, cpus: int = 1):
        self.cpus = cpus
        self.nodes: list[Node] = []
        # Ray 2.60 turns token authentication on by default; every node, driver and job client
        # of this cluster shares one token, passed in the environment
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    # a killed node is declared dead in about 5 s instead of Ray's default 15-30 s
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                    "RAY_health_check_failure_threshold": "5"}

    @property
    def gcs_address(self) -> str:
        return f"{HOST}:{self.nodes[0].ports['port']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{self.nodes[0].ports['dashboard-port']}"

    def _start(self, head: bool) -> Node:
        names = ["node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"]
        if head:
            names += ["port", "dashboard-port", "ray-client-server-port"]
        while True:  # no named port may fall in a workers' range (this node's or another's)
            first_worker = free_ports(1)[0]
            ports = dict(zip(names, free_ports(len(names))))
            ranges = [(n.first_worker, n.first_worker + 60) for n in self.nodes] + [(first_worker, first_worker + 60)]
            named = [*ports.values(), *(v for n in self.nodes for v in n.ports.values())]
            if not any(lo <= port <= hi for lo, hi in ranges for port in named):
                break
        node = Node(tempfile.mkdtemp(prefix="dsr", dir="/tmp"), head, ports, first_worker=first_worker)
        args = [RAY, "start", f"--temp-dir={node.temp_dir}", f"--num-cpus={self.cpus}", "--num-gpus=0",
                f"--node-ip-address={HOST}", "--disable-usage-stats",
                f"--min-worker-port={first_worker}", f"--max-worker-port={first_worker + 60}",
                *(f"--{k}={v}" for k, v in ports.items())]
        if head:
            args += ["--head", "--include-dashboard=true", f"--dashboard-host={HOST}"]
        else:
            args += [f"--address={self.gcs_address}"]
        self.nodes.append(node)
        started = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed ({' '.join(args)}):\n{started.stdout[-2000:]}\n"
                               f"{started.stderr[-2000:]}")
        return node

    def start(self, workers: int = 1) -> "LocalCluster":
        for number in range(1 + workers):
            node = self._start(head=number == 0)
            known = {n.node_id for n in self.nodes}
            node.node_id = next(iter(set(self.wait_for_nodes(number + 1)) - known), "")
        return self

    def alive_node_ids(self) -> list[str]:
        script = ("import ray; ray.init(address='%s', logging_level='ERROR');"
                  "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))" % self.gcs_address)
        out = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True,
                             timeout=120, check=True)
        return out.stdout.split()

    def wait_for_nodes(self, n: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            ids = self.alive_node_ids()
            if len(ids) == n or time.monotonic() > deadline:
                return ids
            time.sleep(1)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
            shutil.rmtree(node.temp_dir, ignore_errors=True)
