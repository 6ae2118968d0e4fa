"""The Lua scripts, loaded once per connection pool and run with EVALSHA.

Each script is the static text of ``lua/_lib.lua``, ``lua/_fair.lua`` and
``lua/_acquire.lua`` followed by its own file; nothing of it ever comes from
user input.  ``CLUSTER_SCRIPTS`` are the Redis Cluster adapter's: the same
scripts with ``lua/_cluster.lua`` after ``_fair.lua`` (a key a script finds while
it runs is touched only when the caller declared it), and the scripts only the
cluster runs (``cluster_*.lua``).
"""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


def _load(*, cluster: bool) -> dict[str, LuaScript]:
    folder = resources.files("nodedrop.store") / "lua"
    parts = ["_lib", "_fair", *(["_cluster"] if cluster else []), "_acquire"]
    lib = "\n".join((folder / f"{part}.lua").read_text() for part in parts)
    out = {}
    names = (
        [n for n in _NAMES if n not in _CLUSTER_REPLACED] + [*_CLUSTER_NAMES] if cluster else _NAMES
    )
    for name in names:
        src = lib + "\n" + (folder / f"{name}.lua").read_text()
        out[name] = LuaScript(name, src, hashlib.sha1(src.encode()).hexdigest())
    return out


SCRIPTS = _load(cluster=False)
CLUSTER_SCRIPTS = _load(cluster=True)
