from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import (
    SCOPE_ADMIN,
    SCOPE_EXECUTE,
    SCOPE_READ,
    Principal,
    RemoteAuthenticator,
    current_principal,
    require_scope,
    reset_principal,
    set_principal,
)
from nodedrop.common.client import open_channel
from nodedrop.common.errors import PermissionDenied, Unauthenticated, Unavailable
from tests.helpers.ports import free_port


class FakeAuthService(auth_service_pb2_grpc.AuthServiceServicer):
    """Test double of the API's AuthService: one valid key, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def Authenticate(
        self, request: auth_service_pb2.AuthenticateRequest, context: Any
    ) -> auth_service_pb2.AuthenticateResponse:
        self.calls += 1
        await asyncio.sleep(0.05)
        if request.credential != "good":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown api key")
        return auth_service_pb2.AuthenticateResponse(
            tenant_id="t1", scopes=[auth_service_pb2.SCOPE_READ], key_id="k1"
        )


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[FakeAuthService, grpc.aio.Channel]]:
    fake = FakeAuthService()  # type: ignore[abstract]
    server = grpc.aio.server()
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        yield fake, channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_remote_authenticator_resolves_and_caches(
    auth_server: tuple[FakeAuthService, grpc.aio.Channel],
) -> None:
    fake, channel = auth_server
    auth = RemoteAuthenticator(channel, ttl_s=60)
    principals = await asyncio.gather(*(auth.authenticate("good") for _ in range(10)))
    assert set(principals) == {Principal("t1", frozenset({SCOPE_READ}), "k1")}
    assert fake.calls == 1, "concurrent lookups of one key share one call"
    await auth.authenticate("good")
    assert fake.calls == 1, "a cached answer costs no call"


async def test_remote_authenticator_refuses_without_caching(
    auth_server: tuple[FakeAuthService, grpc.aio.Channel],
) -> None:
    fake, channel = auth_server
    auth = RemoteAuthenticator(channel, ttl_s=60)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="unknown api key"):
            await auth.authenticate("bad")
    assert fake.calls == 2


async def test_remote_authenticator_unavailable() -> None:
    channel = open_channel(f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Unavailable):
            await RemoteAuthenticator(channel, timeout_s=0.5).authenticate("good")
    finally:
        await channel.close()


async def test_principal_context_and_scopes() -> None:
    with pytest.raises(Unauthenticated):
        current_principal()
    token = set_principal(Principal("t1", frozenset({SCOPE_READ}), "k1"), "secret")
    try:
        assert require_scope(SCOPE_READ).tenant_id == "t1"
        with pytest.raises(PermissionDenied, match="execute"):
            require_scope(SCOPE_EXECUTE)
    finally:
        reset_principal(token)
    assert Principal("t", frozenset({SCOPE_ADMIN}), "k").has_scope(SCOPE_EXECUTE)
