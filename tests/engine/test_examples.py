"""The examples/ workflows validate and run as docs/workflows.md describes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nodedrop.engine import EngineConfig, HttpPolicy, parse_workflow, validate_workflow
from nodedrop.engine.local import run_local

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json"))
)
def test_example_is_valid(name: str) -> None:
    assert validate_workflow(load(name)) == []


async def test_order_pipeline() -> None:
    run = await run_local(
        parse_workflow(load("order_pipeline.json")), load("order_pipeline.input.json")
    )
    (summary,) = run.result.outputs["summary"]
    orders = {o["id"]: o for o in summary["orders"]}
    assert set(orders) == {"o-1", "o-2", "o-4"}  # o-3 has qty 0
    assert orders["o-1"]["tier"] == "vip" and orders["o-1"]["vat"] == 30.0
    assert orders["o-2"]["tier"] == "standard" and orders["o-2"]["vat"] == 0.0


async def test_batch_loop() -> None:
    run = await run_local(parse_workflow(load("batch_loop.json")), [{"n": i} for i in range(25)])
    assert run.result.outputs == {
        "first": [{"count": 25, "last_square": 576, "all_enriched": True}]
    }


async def test_sub_workflow() -> None:
    run = await run_local(
        parse_workflow(load("sub_workflow.json")), load("sub_workflow.input.json")
    )
    assert [c["name"] for c in run.result.outputs["gold_only"]] == ["ada"]


@pytest.fixture
def static_server() -> Iterator[int]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(EXAMPLES)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_http_fetch(static_server: int) -> None:
    config = EngineConfig(http=HttpPolicy(allow=(f"127.0.0.1:{static_server}",)))
    run = await run_local(
        parse_workflow(load("http_fetch.json")),
        {"base_url": f"http://127.0.0.1:{static_server}"},
        config=config,
    )
    assert run.result.outputs == {"products": [{"count": 3, "names": ["lamp", "desk", "chair"]}]}
