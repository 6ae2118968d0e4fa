"""A failed start says, in one line, what failed and which variable to fix,
exits with the documented status (docs/operations.md), and prints no secret
from any setting, whichever entry point fails and however."""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from nodedrop.common.startup import EXIT_DEPENDENCY, EXIT_FAILED, EXIT_SETTINGS
from tests.helpers.ports import free_port
from tests.helpers.services import service_env

from .perimeter_stack import (
    PLANTED_OTHER_SECRET,
    PLANTED_PASSWORD,
    PLANTED_SERVICE_TOKEN,
    assert_clean,
    with_password,
)

ENTRY_POINTS = ["api", "scheduler", "worker", "events", "gateway", "dev"]
ADDR_VARS = [
    "NODEDROP_API_ADDR",
    "NODEDROP_SCHEDULER_ADDR",
    "NODEDROP_EVENTS_ADDR",
    "NODEDROP_WORKER_ADDR",
    "NODEDROP_GATEWAY_ADDR",
]


@dataclass(frozen=True)
class Servers:
    """The Redis and PostgreSQL of the test fixtures (tests/conftest.py)."""

    redis_url: str
    database_url: str

    def database_as(self, role: str) -> str:
        """DATABASE_URL of this server for ``role`` (with the planted password)."""
        parts = urlsplit(self.database_url)
        netloc = f"{role}:{PLANTED_PASSWORD}@{parts.hostname}:{parts.port or 5432}"
        return urlunsplit(parts._replace(netloc=netloc, path="/x"))


@pytest.fixture
def servers(redis_url: str, database_url: str) -> Servers:
    return Servers(redis_url, database_url)


def _planted(servers: Servers, **extra: str) -> dict[str, str]:
    env = {
        # A role the server refuses: a service that needs PostgreSQL stops there.
        "DATABASE_URL": servers.database_as("u"),
        "REDIS_URL": with_password(servers.redis_url),
        "NODEDROP_SERVICE_TOKEN": PLANTED_SERVICE_TOKEN,
        "VENDOR_API_KEY": PLANTED_OTHER_SECRET,
        "NODEDROP_METRICS_ADDR": "off",
        "NODEDROP_SHUTDOWN_GRACE_S": "1",
        "LOG_FORMAT": "json",
    }
    for variable in ADDR_VARS:
        env[variable] = f"127.0.0.1:{free_port()}"
    env.update(extra)
    return env


async def _run(command: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        command,
        env=service_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 40)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        raise AssertionError(f"nodedrop {command} did not stop:\n{out.decode()}") from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("command", ["api", "dev"])
async def test_unreachable_database_is_one_line_naming_database_url(
    command: str, servers: Servers
) -> None:
    env = _planted(servers, DATABASE_URL=f"postgresql://u:{PLANTED_PASSWORD}@127.0.0.1:1/x")
    status, out = await _run(command, env)
    assert_clean(out)
    lines = out.strip().splitlines()
    assert status == EXIT_DEPENDENCY, out
    assert len(lines) == 1, out
    assert "DATABASE_URL" in lines[0] and "PostgreSQL" in lines[0]
    assert lines[0].startswith(f"nodedrop {command}: cannot start")


@pytest.mark.parametrize("command", ["api", "dev"])
async def test_refused_login_is_one_line_naming_database_url(
    command: str, servers: Servers
) -> None:
    # The server answers, but refuses this role: the password would be the next suspect.
    env = _planted(servers, DATABASE_URL=servers.database_as("no_such_role"))
    status, out = await _run(command, env)
    assert_clean(out)
    assert status == EXIT_DEPENDENCY, out
    assert len(out.strip().splitlines()) == 1 and "DATABASE_URL" in out, out


@pytest.mark.parametrize("command", [c for c in ENTRY_POINTS if c != "gateway"])
async def test_malformed_redis_url_names_redis_url(command: str, servers: Servers) -> None:
    env = _planted(servers, REDIS_URL=f"redis://default:{PLANTED_PASSWORD}@127.0.0.1:port/0")
    status, out = await _run(command, env)
    assert_clean(out)
    assert status == EXIT_SETTINGS, out
    assert len(out.strip().splitlines()) == 1 and "REDIS_URL" in out, out
    # The operator still sees where it points, password masked.
    assert "redis://default:***@127.0.0.1:port/0" in out


@pytest.mark.parametrize("command", ["api", "dev"])
async def test_malformed_database_url_names_database_url(command: str, servers: Servers) -> None:
    env = _planted(servers, DATABASE_URL=f"postgres://u:{PLANTED_PASSWORD}@127.0.0.1:nope/x")
    status, out = await _run(command, env)
    assert_clean(out)
    assert status == EXIT_SETTINGS, out
    assert "DATABASE_URL" in out and "u:***@" in out, out


async def test_a_bad_setting_next_to_secrets_names_only_itself(servers: Servers) -> None:
    status, out = await _run("api", _planted(servers, NODEDROP_PG_POOL_MAX="lots"))
    assert_clean(out)
    assert status == EXIT_SETTINGS, out
    assert out.strip().splitlines() == [
        "nodedrop api: invalid value for NODEDROP_PG_POOL_MAX: 'lots' (expected an integer)"
    ]


@pytest.mark.parametrize("command", ENTRY_POINTS)
async def test_a_taken_port_fails_without_secrets(command: str, servers: Servers) -> None:
    # Nothing foreseen: a traceback is logged, redacted and without locals.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        variable = (
            "NODEDROP_GATEWAY_ADDR" if command == "dev" else f"NODEDROP_{command.upper()}_ADDR"
        )
        # Without PostgreSQL's password problem: the API must get as far as binding.
        status, out = await _run(
            command,
            _planted(
                servers,
                **{variable: f"127.0.0.1:{port}"},
                DATABASE_URL=with_password(servers.database_url),
                NODEDROP_MIGRATE_ON_START="false",
            ),
        )
    assert_clean(out)
    assert status == EXIT_FAILED, out
    assert out.strip().splitlines()[-1].startswith(f"nodedrop {command}: failed"), out


@pytest.mark.parametrize("command", ["scheduler", "worker", "events"])
async def test_unreachable_redis_is_retried_naming_redis_url(
    command: str, servers: Servers
) -> None:
    # Not fatal by design (no crash loop while Redis restarts): the service
    # serves, says which setting points nowhere, and prints no password.
    env = _planted(servers, REDIS_URL=f"redis://default:{PLANTED_PASSWORD}@127.0.0.1:1/0")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        command,
        env=service_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await asyncio.sleep(8)
    process.terminate()
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    text = out.decode(errors="replace")
    assert_clean(text)
    assert '"setting":"REDIS_URL"' in text, text


async def test_a_process_group_exits_with_its_processes_status(servers: Servers) -> None:
    env = _planted(
        servers,
        DATABASE_URL=f"postgresql://u:{PLANTED_PASSWORD}@127.0.0.1:1/x",
        NODEDROP_API_PROCESSES="2",
    )
    status, out = await _run("api", env)
    assert_clean(out)
    assert status == EXIT_DEPENDENCY, out
    assert "check DATABASE_URL" in out
