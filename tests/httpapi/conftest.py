"""The HTTP API test stack: scheduler, worker, API and events service as real
processes, and the HTTP API in front of them (``tests.helpers.http_api``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
import pytest

from nodedrop.api.model import Scope
from nodedrop.api.provisioning import create_key
from nodedrop.api.repository_pg import PostgresRepository
from tests.helpers.http_api import running_http_api
from tests.helpers.services import start_service
from tests.helpers.system import TENANT, System, running_system

# A trigger and one node that doubles each item's `n`.
WORKFLOW = {
    "name": "http-api",
    "nodes": [
        {"id": "start", "type": "manual_trigger", "parametersJson": "{}"},
        {"id": "double", "type": "set", "parametersJson": '{"fields": {"doubled": "json.n * 2"}}'},
    ],
    "connections": [
        {"source": "start", "sourceOutput": "main", "target": "double", "targetInput": "main"}
    ],
}


@dataclass
class Stack:
    base: str
    key: str  # read, execute, admin
    reader: str  # read only
    system: System

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=20.0)

    async def create_workflow(self, workflow: Mapping[str, object] = WORKFLOW) -> str:
        async with self.client(self.key) as http:
            reply = await http.post(
                "/nodedrop.workflow.v1.WorkflowService/CreateWorkflow",
                json={"workflow": workflow},
            )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["workflow"]["id"])


@pytest.fixture
async def stack(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: object
) -> AsyncIterator[Stack]:
    del redis_client  # deletes what the processes wrote under the prefix
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=1)
    try:
        reader, _ = await create_key(repo, TENANT, "reader", [Scope.READ])
    finally:
        await repo.close()
    async with contextlib.AsyncExitStack() as exits:
        system = await exits.enter_async_context(running_system(redis_url, redis_prefix, pg_dsn))
        events_port = int(system.env["NODEDROP_EVENTS_ADDR"].rsplit(":", 1)[1])
        await exits.enter_async_context(start_service("events", env=system.env, port=events_port))
        base = await exits.enter_async_context(
            running_http_api(
                system.env,
                {"NODEDROP_HTTP_MAX_BODY_BYTES": "65536", "NODEDROP_HTTP_SSE_KEEPALIVE": "0.2"},
            )
        )
        yield Stack(base, system.apis[0].key, reader.secret, system)
