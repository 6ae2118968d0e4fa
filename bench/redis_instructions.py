"""Redis's instructions per execution, counted by valgrind: the same on any day.

    .venv/bin/python bench/redis_instructions.py [--count 8000] [--max-active 0 2000 64]
        [--nodes 1] [--cluster]

Redis CPU per execution moves 2-3x with this VM's phase; the instructions
Redis executes for it do not. For each --max-active (NODEDROP_TENANT_MAX_ACTIVE;
0 turns fair admission off) this starts a private redis-server under
`valgrind --tool=callgrind` (the Debian package `valgrind`), enqueues COUNT
executions of one tenant through the store (batches of 500, as the scheduler
does), then takes and commits them as a worker does (take 200 at a time, one
commit per execution with its nodes' events and the end; --nodes: a chain of
that many nodes, committed together as the worker's group commit does for
fast nodes), and reads the instruction count callgrind dumps after each
phase. Printed per execution: the enqueue, the run (take and commit) and
their sum. The Python side runs at full speed; only Redis runs under
valgrind (about 50x slower). With --cluster, a private 3-master Redis
Cluster (each master under valgrind) in place of the one server, reached
through redis+cluster://; the count is summed over the masters.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the standard library module redis-py imports.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)
# The repository root, for the private cluster the tests start too.
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import redis

from nodedrop.store import JobSpec
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.model import Commit, ExecutionStatus, Transition
from nodedrop.store.records import EventDraft, EventType
from nodedrop.store.redis_store import RedisStore

_WORKFLOW = orjson.dumps(
    {"name": "noop1", "nodes": [{"id": "t", "type": "manual_trigger"}], "connections": []}
).decode()
_OUT = '{"main":[{"n":1}]}'


def _now() -> int:
    return int(time.time() * 1000)


async def _phases(url: str, pids: list[int], count: int, max_active: int, nodes: int) -> None:
    def dump(tag: str) -> None:
        for pid in pids:
            subprocess.run(
                ["callgrind_control", "-d", tag, str(pid)], check=True, capture_output=True
            )

    config = StoreConfig(keys=Keys("ri", 16), tenant_max_active=max_active)
    store = RedisStore.from_url(url, config)
    await store.connect()
    await store.ensure_groups()
    specs = [
        JobSpec(
            str(uuid.uuid4()),
            "t1",
            "wf",
            _WORKFLOW,
            '{"n": 1}',
            max_attempts=3,
            backoff_s=1.0,
            timeout_s=60.0,
        )
        for _ in range(count)
    ]
    dump("setup")
    for i in range(0, count, 500):
        await store.enqueue_many(specs[i : i + 500], _now())
    dump("enqueue")
    done = 0
    while done < count:
        taken = await store.take("w1", 200, 30_000, _now())
        if not taken:
            raise RuntimeError(f"only {done} of {count} taken")
        commits = [
            Commit(
                a.lease,
                events=(
                    *(
                        e
                        for i in range(nodes)
                        for e in (
                            EventDraft(EventType.NODE_STARTED, f"n{i}"),
                            EventDraft(EventType.NODE_COMPLETED, f"n{i}", _OUT),
                        )
                    ),
                    EventDraft(EventType.EXECUTION_COMPLETED, data_json="{}"),
                ),
                transition=Transition(ExecutionStatus.COMPLETED),
                number=1,
            )
            for a in taken
            if a.lease is not None
        ]
        await store.commit(commits, _now())
        done += len(taken)
    dump("run")
    await store.close()


_CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file={dir}/cg.out")


def _measure(count: int, max_active: int, nodes: int) -> dict[str, float]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [*(x.format(dir=folder) for x in _CALLGRIND), "redis-server",
             "--port", str(port), "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            url = f"redis://127.0.0.1:{port}/0"
            asyncio.run(_phases(url, [proc.pid], count, max_active, nodes))
        finally:
            subprocess.run(
                ["redis-cli", "-p", str(port), "shutdown", "nosave"],
                check=False,
                capture_output=True,
            )
            proc.wait(60)
        return _counts([Path(folder)], count)


def _measure_cluster(count: int, max_active: int, nodes: int) -> dict[str, float]:
    from tests.helpers.redis_cluster import private_cluster  # noqa: PLC0415

    # A node under valgrind answers the cluster bus 50x slower: a longer
    # timeout than the tests' keeps the masters from marking each other failed.
    with private_cluster(3, timeout_s=300, wrapper=_CALLGRIND, node_timeout_ms=60_000) as cluster:
        pids = [n.process.pid for n in cluster.nodes]
        asyncio.run(_phases(cluster.url, pids, count, max_active, nodes))
        folders = [n.directory for n in cluster.nodes]
        for node in cluster.nodes:
            cluster.cli("shutdown", "nosave", port=node.port)
            node.process.wait(60)
        return _counts(folders, count)


def _counts(folders: list[Path], count: int) -> dict[str, float]:
    """Instructions per execution of each dumped phase, summed over the servers."""
    got: dict[str, float] = {}
    for folder in folders:
        for part in folder.glob("cg.out.*"):
            head = part.read_text()[:4000]
            trigger = re.search(r"Trigger: dump (\w+)", head)
            total = re.search(r"^summary: (\d+)", head, re.M)
            if trigger and total:
                name = trigger.group(1)
                got[name] = got.get(name, 0.0) + int(total.group(1)) / count
    return got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=8000)
    ap.add_argument("--max-active", type=int, nargs="+", default=[0, 2000, 64])
    ap.add_argument("--nodes", type=int, default=1, help="nodes per execution (a chain)")
    ap.add_argument("--cluster", action="store_true", help="a private 3-master Redis Cluster")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install valgrind redis-server)", file=sys.stderr)
            return 2
    print("| max active | enqueue | take + commit | per execution |")
    print("|---|---|---|---|")
    for cap in args.max_active:
        got = (_measure_cluster if args.cluster else _measure)(args.count, cap, args.nodes)
        enq, run = got.get("enqueue", 0.0), got.get("run", 0.0)
        print(f"| {cap} | {enq / 1e3:,.1f}k | {run / 1e3:,.1f}k | {(enq + run) / 1e3:,.1f}k |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
