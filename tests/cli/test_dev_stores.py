"""`nodedrop dev` picks its stores without hiding a failure (a real process each
time): the in-memory store only when REDIS_URL is not set and nothing
answers on the default address, said in one line; a Redis it was given that
fails (nothing listening, a refused login, a cluster node answering MOVED,
not Redis at all) stops the start with exit status 3 and one line naming
REDIS_URL, without the password."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodedrop.common.startup import EXIT_DEPENDENCY
from tests.helpers.ports import free_port, port_open
from tests.helpers.redis_server import private_redis
from tests.helpers.services import ADDR_VARS, service_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PASSWORD = "dev-stores-planted-password"


def _dev_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = service_env()
    # Only what the test names: none of the harness's backing stores.
    for name in ("REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    env.update(
        {
            "NODEDROP_METRICS_ADDR": "off",
            "NODEDROP_SHUTDOWN_GRACE_S": "1",
            "NODEDROP_SQLITE_PATH": str(tmp_path / "dev.sqlite3"),
            "LOG_FORMAT": "json",
        }
    )
    for variable in ADDR_VARS.values():
        env[variable] = f"127.0.0.1:{free_port()}"
    env.update(extra)
    return env


async def _refused_start(env: dict[str, str]) -> str:
    """Runs `nodedrop dev`, which must stop by itself with status 3; its last line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        "dev",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        raise AssertionError(f"nodedrop dev did not stop:\n{out.decode()}") from None
    text = out.decode(errors="replace")
    assert PASSWORD not in text, text
    assert process.returncode == EXIT_DEPENDENCY, text
    assert "serving" not in text, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("nodedrop dev: cannot start: Redis is unavailable ("), text
    assert last.endswith("; check REDIS_URL"), text
    return last


async def test_a_redis_url_nothing_answers_at_stops_the_start(tmp_path: Path, pg_dsn: str) -> None:
    port = free_port()
    url = f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"
    line = await _refused_start(_dev_env(tmp_path, REDIS_URL=url, DATABASE_URL=pg_dsn))
    assert f"Error 111 connecting to 127.0.0.1:{port}" in line, line


async def test_a_refused_login_stops_the_start(tmp_path: Path, pg_dsn: str) -> None:
    with private_redis(extra_args=("--requirepass", "the-right-one")) as server:
        url = f"redis://default:{PASSWORD}@127.0.0.1:{server.port}/0"
        line = await _refused_start(_dev_env(tmp_path, REDIS_URL=url, DATABASE_URL=pg_dsn))
    assert "AuthenticationError" in line, line


async def test_a_server_that_is_not_redis_stops_the_start(tmp_path: Path, pg_dsn: str) -> None:
    port = free_port()
    http = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port, 0.2):
            assert http.returncode is None and time.monotonic() < deadline, "no HTTP server"
            await asyncio.sleep(0.05)
        url = f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"
        line = await _refused_start(_dev_env(tmp_path, REDIS_URL=url, DATABASE_URL=pg_dsn))
    finally:
        http.terminate()
        await http.wait()
    assert "Protocol" in line or "protocol" in line, line


async def test_a_cluster_node_behind_redis_url_stops_the_start(tmp_path: Path, pg_dsn: str) -> None:
    with _two_node_cluster() as (port, _):
        url = f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"
        line = await _refused_start(_dev_env(tmp_path, REDIS_URL=url, DATABASE_URL=pg_dsn))
    assert "REDIS_URL points at a Redis Cluster node" in line, line
    assert "redis+cluster://" in line, line
    assert PASSWORD not in line, line


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
async def test_nothing_set_and_nothing_answering_runs_on_memory_and_says_so(
    tmp_path: Path,
) -> None:
    # A network namespace of its own: nothing listens on the default Redis and
    # PostgreSQL addresses there, whatever this machine runs.
    env = _dev_env(tmp_path)
    command = f"ip link set lo up && exec {sys.executable} -m nodedrop.cli.main dev"
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--net",
        "--",
        "sh",
        "-c",
        command,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    text = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while not ("nodedrop dev: console" in text and text.count('"serving"') >= 5):
            assert time.monotonic() < deadline, f"nodedrop dev did not start:\n{text}"
            chunk = await asyncio.wait_for(process.stdout.read(4096), 90)
            assert chunk, f"nodedrop dev exited:\n{text}"
            text += chunk.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()
    memory = [line for line in text.splitlines() if "in-memory store" in line]
    # One line for the whole process, though four services opened the store.
    assert len(memory) == 1, text
    assert "REDIS_URL is not set" in memory[0] and "redis://127.0.0.1:6379/0" in memory[0]
    assert "using the embedded store" in text, text


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port, 0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port}")
        time.sleep(0.05)


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout


def _cluster_node(binary: str, port: int, bus: int, directory: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            # Its own: port + 10000 (the default) may be past 65535.
            "--cluster-port", str(bus),
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.contextmanager
def _two_node_cluster(timeout_s: float = 30.0) -> Iterator[tuple[int, int]]:
    """Two redis-server processes in cluster mode, half the slots each: a key
    of the other half asked of the first answers MOVED."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    directory = tempfile.mkdtemp(prefix="nd-cluster-")
    ports = [free_port(), free_port()]
    buses = [free_port(), free_port()]
    processes = [
        _cluster_node(binary, port, bus, directory) for port, bus in zip(ports, buses, strict=True)
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            _wait_port(port, process)
        _cli(ports[0], "CLUSTER", "ADDSLOTSRANGE", "0", "8191")
        _cli(ports[1], "CLUSTER", "ADDSLOTSRANGE", "8192", "16383")
        _cli(ports[0], "CLUSTER", "MEET", "127.0.0.1", str(ports[1]), str(buses[1]))
        deadline = time.monotonic() + timeout_s
        while not all("cluster_state:ok" in _cli(port, "CLUSTER", "INFO") for port in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the two cluster nodes did not agree in time")
            time.sleep(0.1)
        yield ports[0], ports[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
