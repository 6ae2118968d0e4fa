"""Installs each peer into its own environment under bench/peers/.envs/.

Python peers get a venv each (python3.11 -m venv + pip), BullMQ a private
npm project. An environment is reused when its marker file records the same
pinned requirements, so repeated `make bench` runs do not hit the registries.
The resolved versions (pip freeze / npm ls) go into every result file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from catalog import Peer

ROOT = Path(__file__).resolve().parent
ENVS = ROOT / ".envs"
PYTHON = "python3.11"


def env_dir(peer: Peer) -> Path:
    return ENVS / peer.name


def python_of(peer: Peer) -> Path:
    return env_dir(peer) / "bin" / "python"


def _marker(peer: Peer) -> Path:
    return env_dir(peer) / ".bench-requirements.json"


def ensure(peer: Peer) -> None:
    """Creates or updates the peer's environment to the pinned requirements."""
    marker = _marker(peer)
    wanted = list(peer.requirements)
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    directory = env_dir(peer)
    print(f"[bench] installing {peer.name}: {' '.join(wanted)}", file=sys.stderr, flush=True)
    if peer.runtime == "python":
        if not python_of(peer).exists():
            subprocess.run([PYTHON, "-m", "venv", str(directory)], check=True)
        subprocess.run(
            [
                str(python_of(peer)),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *wanted,
            ],
            check=True,
        )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        package = directory / "package.json"
        if not package.exists():
            package.write_text('{"name": "bench-bullmq", "private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--save-exact", *wanted],
            cwd=directory,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    marker.write_text(json.dumps(wanted))


def resolved_versions(peer: Peer) -> dict[str, str]:
    """What is actually installed, for the result file."""
    if peer.runtime == "python":
        out = subprocess.run(
            [str(python_of(peer)), "-m", "pip", "freeze", "--disable-pip-version-check"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
        return {name.lower(): version for name, version in pairs}
    out = subprocess.run(
        ["npm", "ls", "--json", "--depth=0"],
        cwd=env_dir(peer),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    deps = json.loads(out).get("dependencies", {})
    versions = {name: info["version"] for name, info in deps.items()}
    versions["node"] = subprocess.run(
        ["node", "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return versions
