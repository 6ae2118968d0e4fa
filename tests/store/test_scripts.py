"""Each script carries the helpers it uses and only those (docs/benchmarks.md,
"The scripts' helpers"): a helper left out would fail only when its line runs."""

from __future__ import annotations

import re

import pytest

from nodedrop.store import scripts
from nodedrop.store.scripts import CLUSTER_SCRIPTS, SCRIPTS, LuaScript

# Globals a Redis script may use, and Lua's keywords.
_BUILTINS = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
    "tostring", "type", "unpack", "redis", "cjson", "string", "table", "math",
    "KEYS", "ARGV",
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
    "while",
}  # fmt: skip
# A name read (not a field after "." or ":", not a key assigned in a table).
_USE = re.compile(r"(?<![.:\w])([A-Za-z_]\w*)\b(?!\s*=[^=])")
# Where a script names its locals: local functions and variables, parameters,
# loop variables.
_DEFINE = [
    re.compile(r"\blocal\s+function\s+(\w+)"),
    re.compile(r"\blocal\s+(?!function\b)([\w\s,]+?)\s*="),
    re.compile(r"\bfunction\s*\w*\s*\(([^)]*)\)"),
    re.compile(r"\bfor\s+([\w\s,]+?)\s+in\b"),
    re.compile(r"\bfor\s+(\w+)\s*="),
]


def _defined(code: str) -> set[str]:
    return {x.strip() for p in _DEFINE for names in p.findall(code) for x in names.split(",")} - {
        ""
    }


@pytest.mark.parametrize(
    "script", [*SCRIPTS.values(), *CLUSTER_SCRIPTS.values()], ids=lambda s: s.name
)
def test_every_name_a_script_reads_is_defined_in_it(script: LuaScript) -> None:
    code = re.sub(r"\b\d[\w.]*", " ", scripts._code(script.source))
    missing = set(_USE.findall(code)) - _defined(code) - _BUILTINS
    assert not missing, f"{script.name} reads {sorted(missing)} without defining them"


def test_helpers_a_script_does_not_use_are_left_out() -> None:
    assert "acquire_one" not in SCRIPTS["commit"].source
    assert "fair_sweep" not in SCRIPTS["enqueue"].source
    assert "local function" not in SCRIPTS["trim"].source
    assert "local function acquire_one" in SCRIPTS["take"].source


def test_a_name_binds_to_its_latest_definition_before_the_use() -> None:
    """As Lua scopes locals: a later redefinition (the cluster's overlay) serves
    what comes after it; what came before keeps the first one."""
    text = (
        "local function a() return 1 end\n\n"
        "-- uses the first a\n"
        "local function b() return a() end\n\n"
        "local function a() return 2 end\n\n"
        "local function c() return 3 end\n"
    )
    blocks = scripts._blocks(text)
    assert [sorted(b.defines) for b in blocks] == [["a"], ["b"], ["a"], ["c"]]
    assert blocks[1].text.lstrip().startswith("-- uses the first a")
    assert scripts._assemble(blocks, "return a()").count("local function") == 1
    assert "return 2 end" in scripts._assemble(blocks, "return a()")
    both = scripts._assemble(blocks, "return a() + b()")
    assert both.count("local function a") == 2 and "return 3" not in both


def test_code_drops_comments_and_strings() -> None:
    assert scripts._code("x('--y', \"z\") -- f(\n").split() == ["x(", ",", ")"]
