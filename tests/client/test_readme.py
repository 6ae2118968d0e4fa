"""The README's Python client example runs as written, against the real
services (each its own process)."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from tests.client.system import client_system
from tests.helpers.services import REPO_ROOT, service_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def readme_snippet() -> str:
    """The README's one ``python`` code block, exactly as written."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, f"expected one python block in README.md, found {len(blocks)}"
    return str(blocks[0])


async def test_the_readme_client_example_runs_as_written(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    code = readme_snippet()
    async with client_system(redis_url, redis_prefix, pg_dsn) as system:
        env = service_env(
            {
                "NODEDROP_API_ADDR": system.api_address,
                "NODEDROP_EVENTS_ADDR": system.events_address,
                "NODEDROP_API_KEY": system.key,
            }
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "1 execution_queued "
    assert any(line.endswith(" execution_completed ") for line in lines)
    status, _, summary = lines[-1].partition(" ")
    assert status == "completed"
    # The aggregate node's one item: the three valid orders.
    assert summary.count("'id': 'o-") == 3, summary
