"""A private Redis Cluster: redis-server processes on free loopback ports with
``cluster-enabled yes``, joined by ``redis-cli --cluster create``.

Three masters by default, optionally a replica each (for failover tests).  The
processes and their directories are removed on exit; the shared Redis is never
touched.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as _Seed
from redis.asyncio.cluster import RedisCluster

from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_cluster import RedisClusterStore, parse_cluster_url
from nodedrop.store.redis_store import RedisStore
from tests.helpers.ports import port_open

__all__ = ["ClusterNode", "PrivateCluster", "private_cluster", "raw_client", "store_on"]


@dataclass
class ClusterNode:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class PrivateCluster:
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    @property
    def url(self) -> str:
        """The store's cluster URL: every node as a seed."""
        return "redis+cluster://" + ",".join(self.addresses)

    def cli(self, *args: str, port: int | None = None, timeout_s: float = 60.0) -> str:
        """``redis-cli`` against one node (the first by default); its stdout."""
        target = port if port is not None else self.nodes[0].port
        done = subprocess.run(
            [_binary("redis-cli"), "-h", "127.0.0.1", "-p", str(target), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return done.stdout

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install redis-server)")
    return path


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too;
    the OS's ephemeral ports are often above 55535."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _start_node(root: Path, wrapper: Sequence[str], node_timeout_ms: int) -> ClusterNode:
    port = _cluster_port()
    directory = root / str(port)
    directory.mkdir()
    process = subprocess.Popen(
        [
            *(part.format(dir=directory) for part in wrapper),
            _binary("redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(directory / "nodes.conf"),
            "--cluster-node-timeout", str(node_timeout_ms),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return ClusterNode(port, process, directory)


def _wait_ok(cluster: PrivateCluster, deadline: float) -> None:
    """Until every node reports ``cluster_state:ok`` (slots assigned and agreed)."""
    for node in cluster.nodes:
        while "cluster_state:ok" not in cluster.cli("cluster", "info", port=node.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {node.port} never reached cluster_state:ok")
            time.sleep(0.1)


@contextlib.contextmanager
def private_cluster(
    masters: int = 3,
    replicas: int = 0,
    timeout_s: float = 60.0,
    *,
    wrapper: Sequence[str] = (),
    node_timeout_ms: int = 3000,
) -> Iterator[PrivateCluster]:
    """``wrapper``: a command each node runs under (``{dir}`` names the node's
    folder), e.g. valgrind for bench/redis_instructions.py; such a slow node
    needs a longer ``node_timeout_ms`` than the default, which is short enough
    for a failover test and long enough for a loaded machine."""
    root = Path(tempfile.mkdtemp(prefix="nd-cluster-"))
    cluster = PrivateCluster()
    try:
        deadline = time.monotonic() + timeout_s
        cluster.nodes = [
            _start_node(root, wrapper, node_timeout_ms) for _ in range(masters * (1 + replicas))
        ]
        for node in cluster.nodes:
            while not port_open("127.0.0.1", node.port, 0.2):
                if node.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {node.port}")
                time.sleep(0.05)
        cluster.cli(
            "--cluster", "create", *cluster.addresses,
            "--cluster-replicas", str(replicas), "--cluster-yes",
        )  # fmt: skip
        _wait_ok(cluster, deadline)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def raw_client(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py client for what a test checks or plants directly: single-node,
    or for a ``redis+cluster://`` URL a cluster client (its single-key commands
    are the same; typed as the single-node one, which is all tests call)."""
    if not url.startswith("redis+cluster://"):
        return aioredis.Redis.from_url(url, **options)
    seeds, user, password = parse_cluster_url(url)
    cluster = RedisCluster(
        startup_nodes=[_Seed(host, port) for host, port in seeds],
        username=user,
        password=password,
        **options,
    )
    return cast(aioredis.Redis, cluster)


def store_on(client: aioredis.Redis, config: StoreConfig) -> RedisStore:
    """The store's adapter on a client ``raw_client`` made."""
    if isinstance(client, RedisCluster):
        return RedisClusterStore(client, config)
    return RedisStore(client, config)
