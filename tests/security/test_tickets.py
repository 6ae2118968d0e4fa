"""A ticket (``ndt_...``, which travels in URLs) only reads and subscribes for
its tenant, whatever the scopes of the admin key that issued it: no key
management, no execution, no tickets from tickets. Against a real API process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest

from nodedrop.api.model import Scope
from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import bearer_metadata
from nodedrop.execution.v1 import execution_service_pb2, execution_service_pb2_grpc
from nodedrop.workflow.v1 import workflow_service_pb2, workflow_service_pb2_grpc
from tests.helpers.services import ServiceProcess

from .perimeter_stack import (
    PLANTED_SERVICE_TOKEN,
    Key,
    assert_clean,
    issue_ticket,
    make_key,
    planted_env,
    running,
)

auth = auth_service_pb2
ex = execution_service_pb2
wf = workflow_service_pb2


@pytest.fixture
async def api(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> AsyncIterator[tuple[ServiceProcess, Key]]:
    admin = await make_key(pg_dsn, "tenant-t", Scope.ADMIN, Scope.EXECUTE, Scope.READ)
    async with running("api", planted_env(redis_url, redis_prefix, pg_dsn)) as process:
        yield process, admin


# (service, method, request) a ticket must not call, whatever its key could.
ACTING_CALLS = [
    ("auth", "CreateApiKey", auth.CreateApiKeyRequest(name="minted", scopes=[auth.SCOPE_ADMIN])),
    ("auth", "ListApiKeys", auth.ListApiKeysRequest()),
    ("auth", "RevokeApiKey", auth.RevokeApiKeyRequest(api_key_id="000000000000")),
    ("auth", "IssueTicket", auth.IssueTicketRequest()),
    ("executions", "ExecuteWorkflow", ex.ExecuteWorkflowRequest(workflow_id="wf")),
    ("executions", "CancelExecution", ex.CancelExecutionRequest(execution_id="x")),
    ("executions", "RetryExecution", ex.RetryExecutionRequest(execution_id="x")),
    ("workflows", "CreateWorkflow", wf.CreateWorkflowRequest()),
    ("workflows", "DeleteWorkflow", wf.DeleteWorkflowRequest(workflow_id="wf")),
]


def _stubs(channel: grpc.aio.Channel) -> dict[str, object]:
    return {
        "auth": auth_service_pb2_grpc.AuthServiceStub(channel),
        "executions": execution_service_pb2_grpc.ExecutionServiceStub(channel),
        "workflows": workflow_service_pb2_grpc.WorkflowServiceStub(channel),
    }


async def test_an_admin_keys_ticket_cannot_act(api: tuple[ServiceProcess, Key]) -> None:
    process, admin = api
    ticket = await issue_ticket(process.target, admin.secret)
    async with grpc.aio.insecure_channel(process.target) as channel:
        stubs = _stubs(channel)
        for service, method, request in ACTING_CALLS:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await getattr(stubs[service], method)(
                    request, metadata=bearer_metadata(ticket), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, info.value)
        # It still reads its tenant ...
        listed = await stubs["executions"].ListExecutions(  # type: ignore[attr-defined]
            ex.ListExecutionsRequest(page_size=5), metadata=bearer_metadata(ticket), timeout=5
        )
        assert list(listed.executions) == []
        # ... and says what it is to the services that ask (Authenticate is
        # for services: it takes the service credential).
        who = await stubs["auth"].Authenticate(  # type: ignore[attr-defined]
            auth.AuthenticateRequest(credential=ticket),
            timeout=5,
            metadata=bearer_metadata(PLANTED_SERVICE_TOKEN),
        )
        assert who.tenant_id == "tenant-t" and list(who.scopes) == [auth.SCOPE_READ]
        assert who.HasField("expire_time")
        # The key that issued it keeps every right it has.
        made = await stubs["auth"].CreateApiKey(  # type: ignore[attr-defined]
            auth.CreateApiKeyRequest(name="by the key", scopes=[auth.SCOPE_READ]),
            metadata=bearer_metadata(admin.secret),
            timeout=5,
        )
        assert made.secret.startswith("ndk_")
    assert_clean(process.output(), [admin.secret, ticket, made.secret])


async def test_ticket_lifetime_is_a_setting_with_a_ceiling(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    admin = await make_key(pg_dsn, "tenant-t", Scope.READ)
    env = planted_env(redis_url, redis_prefix, pg_dsn)
    env.update({"NODEDROP_TICKET_TTL": "7s", "NODEDROP_TICKET_MAX_TTL": "30s"})
    async with running("api", env) as process, grpc.aio.insecure_channel(process.target) as channel:
        stub = auth_service_pb2_grpc.AuthServiceStub(channel)
        meta = bearer_metadata(admin.secret)
        default = await stub.IssueTicket(auth.IssueTicketRequest(), metadata=meta, timeout=5)
        ticket_expiry = int(default.ticket.split("_")[2])
        assert ticket_expiry == default.expire_time.seconds
        issued_for = default.expire_time.seconds - int(time.time())
        assert 5 <= issued_for <= 7
        request = auth.IssueTicketRequest()
        request.ttl.seconds = 31
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.IssueTicket(request, metadata=meta, timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
