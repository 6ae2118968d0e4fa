"""Webhooks through real processes: scheduler, worker, API and gateway as
subprocesses, called over HTTP with httpx as curl would."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import orjson
import pytest

from nodedrop.contract import to_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.webhook.v1 import webhook_service_pb2 as wh_pb
from nodedrop.webhook.v1 import webhook_service_pb2_grpc as wh_grpc
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.helpers.services import start_service
from tests.helpers.system import TENANT, ApiClient, running_system

pytestmark = pytest.mark.timeout(120)

TERMINAL = {
    execution_pb2.EXECUTION_STATUS_COMPLETED,
    execution_pb2.EXECUTION_STATUS_FAILED,
    execution_pb2.EXECUTION_STATUS_CANCELLED,
}


def workflow(path: str, *, auth: dict[str, Any] | None = None, **hook: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"path": path, **hook}
    if auth is not None:
        params["authentication"] = auth
    return {
        "name": f"hook-{path}",
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": params},
            {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
        ],
        "connections": [{"from": "hook", "to": "tag"}],
    }


@dataclass
class Edge:
    api: ApiClient
    http: httpx.AsyncClient

    async def create(self, document: dict[str, Any]) -> str:
        response = await self.api.wf.CreateWorkflow(
            wfs_pb.CreateWorkflowRequest(workflow=to_proto(document)), metadata=self.api.md
        )
        return str(response.workflow.id)

    async def activate(self, document: dict[str, Any]) -> str:
        workflow_id = await self.create(document)
        await self.api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=workflow_id), metadata=self.api.md
        )
        return workflow_id

    async def finished(self, execution_id: str) -> execution_pb2.Execution:
        deadline = time.monotonic() + 20
        while True:
            got = await self.api.ex.GetExecution(
                ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=True),
                metadata=self.api.md,
            )
            execution: execution_pb2.Execution = got.execution
            if execution.status in TERMINAL or time.monotonic() > deadline:
                return execution
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def edge_stack(
    redis_url: str, redis_prefix: str, pg_dsn: str, **extra: str
) -> AsyncIterator[Edge]:
    env_extra = {"NODEDROP_GATEWAY_WEBHOOK_MAX_BODY_BYTES": "4096", **extra}
    async with contextlib.AsyncExitStack() as stack:
        system = await stack.enter_async_context(
            running_system(redis_url, redis_prefix, pg_dsn, extra=env_extra)
        )
        gateway = await stack.enter_async_context(
            start_service("gateway", env=system.env, http=True)
        )
        base = f"http://127.0.0.1:{gateway.port}"
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
        yield Edge(system.apis[0], client)


def _hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


async def test_auth_modes_limits_and_deactivation(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    async with edge_stack(redis_url, redis_prefix, pg_dsn) as edge:
        http = edge.http
        plain_id = await edge.activate(workflow("orders/new"))
        url = f"/webhook/{TENANT}/orders/new"
        answer = await http.post(url, json={"order": 7}, params={"src": "shop"})
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["execution_id"]
        done = await edge.finished(execution_id)
        assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED
        assert done.trigger_kind == execution_pb2.TRIGGER_KIND_WEBHOOK
        item = orjson.loads(done.trigger_data_json)
        assert item["body"] == {"order": 7} and item["method"] == "POST"
        assert item["query"] == {"src": "shop"}
        assert (await http.get(url)).status_code == 405
        assert (await http.post(f"/webhook/{TENANT}/nope", json={})).status_code == 404
        # Another tenant's URL space: the same path is not this route.
        assert (await http.post("/webhook/tenant-b/orders/new", json={})).status_code == 404
        too_big = await http.post(url, content=b"x" * 5000)
        assert too_big.status_code == 413

        # Idempotency-Key: one execution for the same key.
        keyed = [
            (await http.post(url, json={}, headers={"Idempotency-Key": "k-1"})).json()
            for _ in range(2)
        ]
        assert keyed[0]["execution_id"] == keyed[1]["execution_id"]

        await edge.activate(
            workflow("token", auth={"type": "header", "name": "X-Token", "value": "s3cret"})
        )
        token_url = f"/webhook/{TENANT}/token"
        assert (await http.post(token_url, json={})).status_code == 401
        assert (
            await http.post(token_url, json={}, headers={"X-Token": "wrong"})
        ).status_code == 401
        ok = await http.post(token_url, json={}, headers={"X-Token": "s3cret"})
        assert ok.status_code == 202
        # The token is not kept in the execution's trigger data.
        stored = await edge.finished(ok.json()["execution_id"])
        assert "s3cret" not in stored.trigger_data_json

        await edge.activate(
            workflow("basic", auth={"type": "basic", "username": "ann", "password": "pw"})
        )
        basic_url = f"/webhook/{TENANT}/basic"
        refused = await http.post(basic_url, json={}, auth=("ann", "nope"))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert (await http.post(basic_url, json={}, auth=("ann", "pw"))).status_code == 202

        github = {
            "type": "hmac",
            "secret": "gh",
            "header": "X-Hub-Signature-256",
            "prefix": "sha256=",
        }
        await edge.activate(workflow("github", auth=github))
        body = b'{"action": "opened"}'
        gh_url = f"/webhook/{TENANT}/github"
        signed = {
            "X-Hub-Signature-256": "sha256=" + _hex("gh", body),
            "Content-Type": "application/json",
        }
        assert (await http.post(gh_url, content=body, headers=signed)).status_code == 202
        wrong = {"X-Hub-Signature-256": "sha256=" + _hex("other", body)}
        assert (await http.post(gh_url, content=body, headers=wrong)).status_code == 401

        stripe = {
            "type": "hmac",
            "secret": "whsec",
            "header": "Stripe-Signature",
            "format": "stripe",
            "tolerance_s": 60,
        }
        await edge.activate(workflow("stripe", auth=stripe))
        st_url = f"/webhook/{TENANT}/stripe"

        def stripe_header(stamp: int) -> dict[str, str]:
            sig = _hex("whsec", f"{stamp}.".encode() + body)
            return {"Stripe-Signature": f"t={stamp},v1={sig}"}

        now = int(time.time())
        assert (
            await http.post(st_url, content=body, headers=stripe_header(now))
        ).status_code == 202
        replayed = await http.post(st_url, content=body, headers=stripe_header(now - 600))
        assert replayed.status_code == 401
        assert "tolerance" in replayed.json()["error"]["message"]

        # A tenant's API key cannot call the internal webhook RPC.
        stub = wh_grpc.WebhookServiceStub(edge.api.channel)
        call = wh_pb.WebhookCall(
            id=1,
            request=wh_pb.HandleWebhookRequest(tenant_id=TENANT, path="orders/new", method="POST"),
        )
        stream = stub.HandleWebhooks(
            iter([wh_pb.HandleWebhooksRequest(calls=[call])]), metadata=edge.api.md
        )
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            async for _ in stream:
                pass
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        await edge.api.wf.DeactivateWorkflow(
            wfs_pb.DeactivateWorkflowRequest(workflow_id=plain_id), metadata=edge.api.md
        )
        # Route lookups are trusted for at most a second.
        await asyncio.sleep(1.2)
        assert (await http.post(url, json={})).status_code == 404


async def test_rate_limit_answers_429_with_retry_after(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    limits = {"NODEDROP_EXECUTE_RATE_PER_S": "1", "NODEDROP_EXECUTE_RATE_BURST": "5"}
    async with edge_stack(redis_url, redis_prefix, pg_dsn, **limits) as edge:
        await edge.activate(workflow("burst"))
        statuses = []
        for _ in range(8):
            answer = await edge.http.post(f"/webhook/{TENANT}/burst", json={})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
        # The burst passes; then at most one token refills within the loop.
        assert statuses[:5] == [202] * 5 and statuses.count(429) >= 2, statuses


async def test_when_finished_and_the_test_url(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    async with edge_stack(redis_url, redis_prefix, pg_dsn) as edge:
        http = edge.http
        respond = workflow("answer", response_mode="when_finished")
        respond["nodes"].append(
            {
                "id": "reply",
                "type": "respond_to_webhook",
                "parameters": {
                    "status": 201,
                    "headers": {"X-Order": "{{ json.body.order }}"},
                    "body": {"received": "{{ json.body.order }}", "seen": "{{ json.seen }}"},
                },
            }
        )
        respond["connections"].append({"from": "tag", "to": "reply"})
        await edge.activate(respond)
        answer = await http.post(f"/webhook/{TENANT}/answer", json={"order": 42})
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"received": 42, "seen": True}
        assert answer.headers["x-order"] == "42"

        await edge.activate(workflow("last", response_mode="when_finished"))
        last = await http.post(f"/webhook/{TENANT}/last", json={"n": 1})
        assert last.status_code == 200, last.text
        assert last.json()[0]["seen"] is True and last.json()[0]["body"] == {"n": 1}

        failing = workflow("fails", response_mode="when_finished")
        failing["nodes"].append(
            {"id": "stop", "type": "stop_and_error", "parameters": {"message": "no stock"}}
        )
        failing["connections"].append({"from": "tag", "to": "stop"})
        await edge.activate(failing)
        failed = await http.post(f"/webhook/{TENANT}/fails", json={})
        assert failed.status_code == 500, failed.text
        assert failed.json()["error"]["code"] == "EXECUTION_FAILED"
        assert "no stock" in failed.json()["error"]["message"]

        slow = workflow("slow", response_mode="when_finished", wait_s=0.3)
        slow["nodes"].append({"id": "pause", "type": "wait", "parameters": {"seconds": 3}})
        slow["connections"].append({"from": "tag", "to": "pause"})
        await edge.activate(slow)
        pending = await http.post(f"/webhook/{TENANT}/slow", json={})
        assert pending.status_code == 202 and pending.json()["execution_id"]

        # The test URL runs the latest version of a workflow that is not active.
        draft = await edge.create(workflow("draft"))
        test_url = f"/webhook-test/{draft}/draft"
        assert (await http.post(f"/webhook/{TENANT}/draft", json={})).status_code == 404
        assert (await http.post(test_url, json={})).status_code == 401
        bad_key = {"X-Nodedrop-Api-Key": "nd_wrong"}
        assert (await http.post(test_url, json={}, headers=bad_key)).status_code == 401
        tested = await http.post(
            test_url, json={"t": 1}, headers={"X-Nodedrop-Api-Key": edge.api.key}
        )
        assert tested.status_code == 202, tested.text
        done = await edge.finished(tested.json()["execution_id"])
        assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED
        assert edge.api.key not in done.trigger_data_json
