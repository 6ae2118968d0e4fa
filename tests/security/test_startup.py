"""Closed by default: a service started on its own without a service
credential refuses to start with one line naming the variable (status 2);
the token can come from a mounted file, and a rotation's previous token is
accepted while the new one is sent."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest

from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from tests.helpers.services import SERVICE_TOKEN_VAR, service_env, start_service

pytestmark = pytest.mark.slow

OLD_TOKEN = "old-token-" + "a" * 32
NEW_TOKEN = "new-token-" + "b" * 32


async def _run(service: str, env: dict[str, str]) -> tuple[int, str]:
    full = service_env(env)
    full.pop(SERVICE_TOKEN_VAR, None)
    full.update(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        service,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"nodedrop {service} started without a service credential") from None
    return proc.returncode or 0, (out + err).decode()


@pytest.mark.parametrize("service", ["scheduler", "worker", "api", "events", "gateway"])
async def test_a_service_without_a_credential_refuses_to_start(
    service: str, env: dict[str, str]
) -> None:
    bare = {k: v for k, v in env.items() if k != SERVICE_TOKEN_VAR}
    code, output = await _run(service, bare)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "NODEDROP_SERVICE_TOKEN" in lines[0] and "NODEDROP_TLS_CERT" in lines[0], lines[0]


async def test_a_bad_token_is_refused_without_showing_it(env: dict[str, str]) -> None:
    code, output = await _run("scheduler", {**env, SERVICE_TOKEN_VAR: "ndk_lookslikeakey1234"})
    assert code == 2 and "NODEDROP_SERVICE_TOKEN" in output, output
    assert "lookslikeakey" not in output


async def _code(target: str, token: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await pb_grpc.SchedulerServiceStub(channel).GetQueueStats(
                pb.GetQueueStatsRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_token_from_a_file_and_rotation(env: dict[str, str], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(NEW_TOKEN + "\n")
    previous_file = tmp_path / "previous"
    previous_file.write_text(OLD_TOKEN + "\n")
    rotating = {k: v for k, v in env.items() if k != SERVICE_TOKEN_VAR}
    rotating |= {
        "NODEDROP_SERVICE_TOKEN_FILE": str(token_file),
        "NODEDROP_SERVICE_TOKEN_PREVIOUS_FILE": str(previous_file),
    }
    async with start_service("scheduler", env={**rotating, SERVICE_TOKEN_VAR: ""}) as scheduler:
        # The new token and, during the rotation, the previous one.
        assert await _code(scheduler.target, NEW_TOKEN) == grpc.StatusCode.OK
        assert await _code(scheduler.target, OLD_TOKEN) == grpc.StatusCode.OK
        assert await _code(scheduler.target, "c" * 40) == grpc.StatusCode.UNAUTHENTICATED
    # After the rotation: the previous token no longer opens anything.
    del rotating["NODEDROP_SERVICE_TOKEN_PREVIOUS_FILE"]
    async with start_service("scheduler", env={**rotating, SERVICE_TOKEN_VAR: ""}) as scheduler:
        assert await _code(scheduler.target, NEW_TOKEN) == grpc.StatusCode.OK
        assert await _code(scheduler.target, OLD_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
