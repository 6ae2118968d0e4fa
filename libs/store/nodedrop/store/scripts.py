"""The Lua scripts, loaded once per connection pool and run with EVALSHA.

Each script is its own file after the helpers it uses from ``lua/_lib.lua``,
``lua/_fair.lua`` and ``lua/_acquire.lua``; nothing of it ever comes from user
input.  ``CLUSTER_SCRIPTS`` are the Redis Cluster adapter's: the same scripts
with ``lua/_cluster.lua`` after ``_fair.lua`` (a key a script finds while it
runs is touched only when the caller declared it), and the scripts only the
cluster runs (``cluster_*.lua``).

Only the helpers a script uses are in it: Redis runs a script's whole text on
every call, and each ``local function`` it defines costs a closure per call
(all the helpers in every script cost about a tenth of the Redis CPU of an
execution; docs/benchmarks.md, "The scripts' helpers").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

_NAMES = (
    "enqueue",
    "acquire",
    "take",
    "commit",
    "renew",
    "release",
    "move_due",
    "reclaim",
    "cancel",
    "retry_failed",
    "purge_failed",
    "restore_failed",
    "append",
    "requeue",
    "trim",
    "swap_schedule",
)
_CLUSTER_NAMES = ("cluster_take", "cluster_reclaim", "cluster_move_due", "cluster_leave")
# What the cluster's own scripts do instead (after reading, with plain commands,
# the keys these would find while they run).
_CLUSTER_REPLACED = ("take", "reclaim", "move_due")

_DEFINES = re.compile(r"^local\s+(?:function\s+(\w+)|([\w\s,]+?)\s*=)")
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


@dataclass(frozen=True, slots=True)
class _Block:
    """One top-level definition of a helper file, with the comments before it."""

    defines: frozenset[str]
    text: str
    uses: frozenset[str]


def _code(text: str) -> str:
    """``text`` without its comments and string literals (what names it uses)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append(" ")
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _blocks(text: str) -> list[_Block]:
    """Top-level ``local`` definitions, each with the comment lines above it."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("local ")]
    begins = []
    for k, i in enumerate(starts):
        j = i
        while j > 0 and (k == 0 or j - 1 > starts[k - 1]) and _comment(lines[j - 1]):
            j -= 1
        begins.append(0 if k == 0 else j)
    out = []
    for k, i in enumerate(starts):
        m = _DEFINES.match(lines[i])
        if m is None:
            raise ValueError(f"not a definition: {lines[i]!r}")
        defines = frozenset(x.strip() for x in (m.group(1) or m.group(2)).split(","))
        body = "".join(lines[begins[k] : begins[k + 1] if k + 1 < len(starts) else len(lines)])
        out.append(_Block(defines, body, frozenset(_NAME.findall(_code(body))) - defines))
    return out


def _comment(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("--")


def _assemble(blocks: list[_Block], body: str) -> str:
    """``body`` after the blocks it needs, directly or through another block.

    A name binds to its latest definition before the use (``_cluster.lua``
    redefines some of ``_fair.lua``'s), as Lua's scoping of locals does."""
    latest: dict[str, int] = {}
    binds: list[dict[str, int]] = []
    for i, block in enumerate(blocks):
        binds.append({x: latest[x] for x in block.uses if x in latest})
        for x in block.defines:
            latest[x] = i
    need: set[int] = set()
    todo = [latest[x] for x in set(_NAME.findall(_code(body))) if x in latest]
    while todo:
        i = todo.pop()
        if i not in need:
            need.add(i)
            todo.extend(binds[i].values())
    return "".join(blocks[i].text for i in sorted(need)) + "\n" + body


def _load(*, cluster: bool) -> dict[str, LuaScript]:
    folder = resources.files("nodedrop.store") / "lua"
    parts = ["_lib", "_fair", *(["_cluster"] if cluster else []), "_acquire"]
    blocks = [b for part in parts for b in _blocks((folder / f"{part}.lua").read_text())]
    out = {}
    names = (
        [n for n in _NAMES if n not in _CLUSTER_REPLACED] + [*_CLUSTER_NAMES] if cluster else _NAMES
    )
    for name in names:
        src = _assemble(blocks, (folder / f"{name}.lua").read_text())
        out[name] = LuaScript(name, src, hashlib.sha1(src.encode()).hexdigest())
    return out


SCRIPTS = _load(cluster=False)
CLUSTER_SCRIPTS = _load(cluster=True)
