"""What user code sees and what comes back, on every adapter (docs/workflows.md, "Code")."""

from __future__ import annotations

import time

import pytest

from nodedrop.engine.code import RUN_ONCE_FOR_EACH_ITEM, CodeSandbox
from nodedrop.engine.errors import CodeError, LimitExceededError
from tests.sandbox.conftest import run_code

pytestmark = pytest.mark.asyncio(loop_scope="session")

ITEMS = [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_all_items_mode_sees_every_item(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        "return $input.all().map((it, i) => ({json: {n: it.json.n * 10, i: i, k: items.length}}))",
        items=ITEMS,
    )
    assert out.items == [
        {"n": 10, "i": 0, "k": 3},
        {"n": 20, "i": 1, "k": 3},
        {"n": 30, "i": 2, "k": 3},
    ]


async def test_first_last_and_json_of_all_items_mode(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        "return [{f: $input.first().json.n, l: $input.last().json.n, j: typeof $json, "
        "it: typeof $input.item}]",
        items=ITEMS,
    )
    assert out.items == [{"f": 1, "l": 3, "j": "undefined", "it": "undefined"}]


async def test_each_item_mode_runs_once_per_item(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        "if ($json.n === 2) return; return {n: $json.n, same: $input.item.json.n, i: $itemIndex}",
        items=ITEMS,
        mode=RUN_ONCE_FOR_EACH_ITEM,
    )
    assert out.items == [{"n": 1, "same": 1, "i": 0}, {"n": 3, "same": 3, "i": 2}]


async def test_each_item_mode_refuses_an_array(sandbox: CodeSandbox) -> None:
    with pytest.raises(CodeError) as err:
        await run_code(sandbox, "return [$json]", items=ITEMS, mode=RUN_ONCE_FOR_EACH_ITEM)
    assert err.value.code == "code_error"
    assert "one item or nothing" in err.value.message


async def test_plain_objects_and_json_wrappers_are_both_items(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox, "return [{a: 1}, {json: {b: 2}}, {json: {c: 3}, pairedItem: 0}, {json: 1, x: 2}]"
    )
    assert out.items == [{"a": 1}, {"b": 2}, {"c": 3}, {"json": 1, "x": 2}]


async def test_one_object_is_one_item(sandbox: CodeSandbox) -> None:
    assert (await run_code(sandbox, "return {only: true}")).items == [{"only": True}]


async def test_returning_nothing_or_a_scalar_fails(sandbox: CodeSandbox) -> None:
    for source, words in (("return", "returned nothing"), ("return [1]", "not an object")):
        with pytest.raises(CodeError) as err:
            await run_code(sandbox, source)
        assert err.value.code == "code_error"
        assert words in err.value.message
        assert not err.value.retryable


async def test_earlier_nodes_trigger_and_execution(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        'return [{a: $("prev").all().length, b: $("prev").first().json.v, '
        'c: $node["prev"].json.v, t: $trigger.t, id: $execution.id, at: $execution.attempt}]',
        nodes={"prev": [{"v": "x"}, {"v": "y"}]},
        trigger={"t": [1]},
        execution={"id": "exec-9", "attempt": 2, "workflow": "w"},
    )
    assert out.items == [{"a": 2, "b": "x", "c": "x", "t": [1], "id": "exec-9", "at": 2}]


async def test_unknown_node_is_a_clear_error(sandbox: CodeSandbox) -> None:
    with pytest.raises(CodeError) as err:
        await run_code(sandbox, 'return $("nowhere").all()')
    assert 'no output of node "nowhere"' in err.value.message


async def test_each_item_mode_pairs_earlier_nodes_by_index(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        'return {v: $("prev").item.json.v}',
        items=[{}, {}],
        nodes={"prev": [{"v": "x"}, {"v": "y"}]},
        mode=RUN_ONCE_FOR_EACH_ITEM,
    )
    assert out.items == [{"v": "x"}, {"v": "y"}]


async def test_integers_and_doubles(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        "return {i: $json.i + 1, d: $json.d * 2, whole: 2.0, half: 0.5, big: 2 ** 53, nan: NaN}",
        items=[{"i": 41, "d": 1.25}],
        mode=RUN_ONCE_FOR_EACH_ITEM,
    )
    item = out.items[0]
    assert item == {"i": 42, "d": 2.5, "whole": 2, "half": 0.5, "big": 2**53, "nan": None}
    assert type(item["i"]) is int
    assert type(item["whole"]) is int
    assert type(item["d"]) is float


async def test_async_code_and_awaited_promises(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox, "const v = await Promise.all([1, Promise.resolve(2)]); return [{v}]"
    )
    assert out.items == [{"v": [1, 2]}]


async def test_console_lines_are_captured_and_bounded(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox,
        "console.log('a', 1, {b: 2}); console.warn('w'); "
        "for (let i = 0; i < 50; i++) console.log('line', i); return []",
        max_log_lines=5,
    )
    assert out.logs[:3] == [
        {"level": "log", "line": 'a 1 {"b":2}'},
        {"level": "warn", "line": "w"},
        {"level": "log", "line": "line 0"},
    ]
    assert len(out.logs) == 6
    assert out.logs[-1] == {"level": "info", "line": "(47 more lines dropped)"}


async def test_console_bytes_are_bounded(sandbox: CodeSandbox) -> None:
    out = await run_code(
        sandbox, "console.log('x'.repeat(600)); console.log('y'.repeat(600)); return []"
    )
    assert [line["line"][0] for line in out.logs] == ["x", "("]


async def test_thrown_errors_name_the_line(sandbox: CodeSandbox) -> None:
    with pytest.raises(CodeError) as err:
        await run_code(sandbox, "const a = 1;\n\nthrow new Error('boom: ' + a)")
    assert err.value.code == "code_error"
    assert err.value.message.startswith("Error: boom: 1 (line 3")


async def test_output_over_the_budget_is_limit_exceeded(sandbox: CodeSandbox) -> None:
    with pytest.raises(LimitExceededError) as err:
        await run_code(sandbox, "return [{s: 'x'.repeat(300000)}]", max_output_bytes=100_000)
    assert "max_output_bytes" in err.value.message


async def test_date_is_the_host_clock_and_random_is_not_repeated(sandbox: CodeSandbox) -> None:
    # docs/workflows.md: Date is the real clock, Math.random is not seeded.
    before = time.time() * 1000
    first = await run_code(sandbox, "return [{now: Date.now(), r: Math.random()}]")
    second = await run_code(sandbox, "return [{r: Math.random()}]")
    after = time.time() * 1000
    assert before - 5 <= first.items[0]["now"] <= after + 5
    assert first.items[0]["r"] != second.items[0]["r"]
