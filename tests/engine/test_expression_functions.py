"""Every function a CEL expression calls is checked when it compiles: the library
compiles any call and fails only when it runs."""

from __future__ import annotations

import cel
import pytest

from nodedrop.engine import validate_workflow
from nodedrop.engine.expressions import FUNCTIONS, CompileError, Expression, Template

# One call of each function the engine accepts, run by the library in use: a
# function it stops evaluating fails here instead of in a workflow.
CALLS = {
    "size": "size([1]) + [1].size()",
    "contains": '"ab".contains("a")',
    "startsWith": '"ab".startsWith("a")',
    "endsWith": '"ab".endsWith("b")',
    "matches": '"ab".matches("a.*")',
    "string": "string(1)",
    "bytes": 'bytes("a")',
    "double": "double(1)",
    "int": "int(1.5)",
    "uint": "uint(1)",
    "dyn": "dyn(1)",
    "type": "type(1)",
    "timestamp": 'timestamp("2024-01-01T00:00:00Z")',
    "duration": 'duration("1s")',
    "of": "optional.of(1)",
    "none": "optional.none()",
    "ofNonZeroValue": "optional.ofNonZeroValue(1)",
    "hasValue": "optional.of(1).hasValue()",
    "value": "optional.of(1).value()",
    "or": "optional.none().or(optional.of(1))",
    "orValue": "optional.none().orValue(1)",
}
GETTERS = (
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
)
CALLS.update({g: f'timestamp("2024-01-01T00:00:00Z").{g}()' for g in GETTERS})


def test_every_accepted_function_runs() -> None:
    assert set(CALLS) == FUNCTIONS
    for name, source in CALLS.items():
        Expression(source, "probe")
        cel.evaluate(source, {})  # raises if the library has no such function
        assert name in cel.compile(source).functions()


@pytest.mark.parametrize(
    "source",
    [
        "json.v.max()",
        "max(json.a, json.b)",
        "math.greatest(1, 2)",
        '"a,b".split(",")',
        "json.name.lowerAscii()",
    ],
)
def test_a_function_the_library_lacks_is_refused_at_compile_time(source: str) -> None:
    with pytest.raises(RuntimeError, match="Undefined variable or function"):
        cel.evaluate(source, {"json": {"v": [1], "a": 1, "b": 2, "name": "A"}})
    with pytest.raises(CompileError) as info:
        Expression(source, "nodes[1].parameters.x")
    assert info.value.code == "unknown_function"
    with pytest.raises(CompileError) as info:
        Template("Hi {{ " + source + " }}", "nodes[1].parameters.x")
    assert info.value.code == "unknown_function"


def test_macros_operators_and_comprehension_variables_pass() -> None:
    Expression(
        "has(json.a) && json.items.all(i, i > 0) && json.items.exists(i, i in [1, 2])"
        " && size(json.items.map(i, -i).filter(i, i % 2 == 0)) >= 0"
        " && json.items.exists_one(i, i == 1) ? json.a[0] : !false",
        "p",
    )


def test_validation_names_the_node_and_parameter() -> None:
    problems = validate_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "top", "type": "if", "parameters": {"condition": "json.v.max() > 1"}},
                {"id": "s", "type": "set", "parameters": {"fields": {"n": "json.n.trim()"}}},
            ],
            "connections": [
                {"from": "t", "to": "top"},
                {"from": "top", "output": "true", "to": "s"},
            ],
        }
    )
    assert [(p.path, p.code) for p in problems] == [
        ("nodes[1].parameters.condition", "unknown_function"),
        ("nodes[2].parameters.fields.n", "unknown_function"),
    ]
    assert "max()" in problems[0].message and "trim()" in problems[1].message
