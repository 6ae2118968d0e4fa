"""A system under test as the harness runs it: the peers from the catalog,
plus nodedrop-exec itself (the project's own venv and worker process)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import envs
from catalog import PEERS, Peer

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class System:
    name: str
    command: tuple[str, ...]  # driver argv, run with cwd=drivers/
    redis_db: int
    concurrency: str
    chain: str
    has_events: bool
    env: Mapping[str, str] = field(default_factory=dict)
    peer: Peer | None = None

    def versions(self) -> dict[str, str]:
        if self.peer is not None:
            return envs.resolved_versions(self.peer)

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=REPO, check=False, capture_output=True, text=True
            ).stdout.rstrip("\n")  # porcelain lines start with a space

        # The working tree is shared with engineers at work: what ran may
        # include their uncommitted changes, so those paths are recorded too.
        dirty = git("status", "--porcelain", "--", "libs", "services").splitlines()
        return {
            "nodedrop-exec": f"git {git('rev-parse', '--short', 'HEAD')}",
            "uncommitted": ", ".join(line[3:] for line in dirty) or "none",
        }


NODEDROP = System(
    name="nodedrop",
    command=(str(REPO / ".venv" / "bin" / "python"), "nodedrop_driver.py"),
    redis_db=8,
    concurrency="1 worker process (nodedrop worker), EXECUTION_WORKER_CONCURRENCY 50 "
    "(default 5; 50 matches BullMQ's setting), default batch reads",
    chain="five-node workflow (manual trigger + four noop nodes) in queue mode",
    has_events=True,
    env={"BENCH_NODEDROP_CONCURRENCY": "50"},
)


def _of_peer(peer: Peer) -> System:
    if peer.runtime == "node":
        return System(
            name=peer.name,
            command=("node", "bullmq_driver.cjs"),
            redis_db=peer.redis_db,
            concurrency=peer.concurrency,
            chain=peer.chain,
            has_events=peer.has_events,
            env={"NODE_PATH": str(envs.env_dir(peer) / "node_modules")},
            peer=peer,
        )
    return System(
        name=peer.name,
        command=(str(envs.python_of(peer)), f"{peer.name}_driver.py"),
        redis_db=peer.redis_db,
        concurrency=peer.concurrency,
        chain=peer.chain,
        has_events=peer.has_events,
        peer=peer,
    )


def system_of(name: str) -> System:
    if name == NODEDROP.name:
        return NODEDROP
    for peer in PEERS:
        if peer.name == name:
            return _of_peer(peer)
    raise SystemExit(f"unknown system {name!r}")
