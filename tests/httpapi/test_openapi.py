"""The OpenAPI document against the routes it describes, on real processes:
every route is documented, every documented operation answers (no 404 from
the router, no 405), and every JSON answer matches the schema the document
gives for its status."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from nodedrop.admin.v1 import queue_admin_service_pb2
from nodedrop.auth.v1 import auth_service_pb2
from nodedrop.event.v1 import event_service_pb2
from nodedrop.execution.v1 import execution_service_pb2
from nodedrop.gateway.httpapi.catalog import public_methods
from nodedrop.gateway.httpapi.routes import ROUTES
from nodedrop.workflow.v1 import workflow_service_pb2
from tests.httpapi.conftest import WORKFLOW, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

_DOC_URI = "urn:nodedrop:openapi"
_UNKNOWN_ID = "0190a1b2-0000-7000-8000-000000000000"


class _Checker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self._registry: Registry[Any] = Registry().with_resource(_DOC_URI, resource)
        self.checked: list[tuple[str, str, int]] = []

    def _schema(self, path: str, method: str, status: int) -> dict[str, Any] | None:
        responses = self.document["paths"][path][method]["responses"]
        response = responses.get(str(status), responses["default"])
        if "$ref" in response:
            response = self.document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        media = response.get("content", {}).get("application/json")
        return None if media is None else _rebase(media["schema"])

    def check(self, path: str, method: str, reply: httpx.Response) -> None:
        assert not (reply.status_code == 404 and reply.json().get("code") == "unimplemented"), (
            f"documented {method.upper()} {path} has no route"
        )
        assert reply.status_code != 405, f"documented {method.upper()} {path} refused the method"
        assert reply.status_code < 500, (path, reply.status_code, reply.text)
        if not reply.headers.get("content-type", "").startswith("application/json"):
            return
        schema = self._schema(path, method, reply.status_code)
        assert schema is not None, (path, reply.status_code)
        validator = Draft202012Validator(schema, registry=self._registry)
        errors = sorted(validator.iter_errors(reply.json()), key=str)
        assert not errors, f"{method.upper()} {path} {reply.status_code}: {errors[0]}"
        self.checked.append((path, method, reply.status_code))


def _rebase(schema: Any) -> Any:
    """Local `#/components/...` references point into the document's resource."""
    if isinstance(schema, dict):
        return {
            k: (_DOC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def _envelope(payload: dict[str, Any]) -> bytes:
    body = orjson.dumps(payload)
    return struct.pack(">BI", 0, len(body)) + body


async def test_document_is_valid_and_matches_the_routes(stack: Stack) -> None:
    async with stack.client() as anonymous:
        served = await anonymous.get("/api/openapi.json")
    assert served.status_code == 200
    document = served.json()
    validate(document)  # the OpenAPI 3.1 schema itself

    documented = {(p, m) for p, item in document["paths"].items() for m in item}
    routed = {(m.path, "post") for m in public_methods()} | {
        (r.template, r.method.lower()) for r in ROUTES
    }
    assert documented == routed
    # Internal services are neither routed nor documented.
    assert not [p for p, _ in documented if ".queue.v1." in p or p.endswith("/Authenticate")]
    # Every other method of the public services is, read from their descriptors.
    for module, service in (
        (execution_service_pb2, "ExecutionService"),
        (workflow_service_pb2, "WorkflowService"),
        (auth_service_pb2, "AuthService"),
        (queue_admin_service_pb2, "QueueAdminService"),
        (event_service_pb2, "EventService"),
    ):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            path = f"/{descriptor.full_name}/{method.name}"
            assert ((path, "post") in documented) is (method.name != "Authenticate"), path


async def test_every_documented_operation_answers_as_documented(stack: Stack) -> None:
    async with stack.client() as anonymous:
        checker = _Checker((await anonymous.get("/api/openapi.json")).json())
    workflow_id = await stack.create_workflow()
    async with stack.client(stack.key) as http:
        started = await http.post(
            f"/api/workflows/{workflow_id}/execute", params={"wait": "20"}, json=[{"n": 2}]
        )
        checker.check("/api/workflows/{workflow_id}/execute", "post", started)
        assert started.status_code == 200, started.text
        execution_id = started.json()["execution"]["id"]
        ids = {"workflow_id": workflow_id, "execution_id": execution_id}

        # Successful answers of the main calls, each against its 200 schema.
        ex, wf = "execution.v1.ExecutionService", "workflow.v1.WorkflowService"
        happy: list[tuple[str, dict[str, Any]]] = [
            (f"{ex}/GetExecution", {"executionId": execution_id, "includeOutputs": True}),
            (f"{ex}/ListExecutions", {}),
            (f"{ex}/ListExecutionEvents", {"executionId": execution_id}),
            (f"{ex}/GetExecutionStats", {}),
            (f"{wf}/CreateWorkflow", {"workflow": WORKFLOW}),
            (f"{wf}/ListWorkflows", {}),
            (f"{wf}/ListWorkflowVersions", {"workflowId": workflow_id}),
            (f"{wf}/ValidateWorkflow", {"workflow": WORKFLOW}),
            ("auth.v1.AuthService/ListApiKeys", {}),
            ("admin.v1.QueueAdminService/GetQueueStats", {}),
            ("admin.v1.QueueAdminService/ListSchedules", {}),
        ]
        for name, body in happy:
            path = f"/nodedrop.{name}"
            reply = await http.post(path, json=body)
            assert reply.status_code == 200, (path, reply.text)
            checker.check(path, "post", reply)
        for template in ("/api/executions/{execution_id}", "/api/workflows/{workflow_id}"):
            reply = await http.get(template.format(**ids))
            assert reply.status_code == 200, (template, reply.text)
            checker.check(template, "get", reply)

        # Then every documented operation, with an empty request and unknown ids:
        # the answer (mostly an error) must still be the documented one.
        for path, item in checker.document["paths"].items():
            for method, operation in item.items():
                url = path.replace("{workflow_id}", _UNKNOWN_ID).replace(
                    "{execution_id}", _UNKNOWN_ID
                )
                content = operation.get("requestBody", {}).get("content", {})
                if "application/connect+json" in content:
                    async with http.stream(
                        "POST",
                        url,
                        content=_envelope({}),
                        headers={"Content-Type": "application/connect+json"},
                    ) as reply:
                        assert reply.status_code in (200, 400, 404), (path, reply.status_code)
                    continue
                if path.endswith("/events"):
                    async with http.stream("GET", url) as reply:
                        await reply.aread()
                    checker.check(path, method, reply)
                    continue
                kwargs: dict[str, Any] = {"json": {}} if content else {}
                reply = await http.request(method.upper(), url, **kwargs)
                checker.check(path, method, reply)
    statuses = {status for _, _, status in checker.checked}
    assert {200, 400, 404} <= statuses, statuses
