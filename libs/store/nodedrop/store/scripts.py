"""The Lua scripts, loaded once per connection pool and run with EVALSHA.

Each script is the static text of ``lua/_lib.lua`` and ``lua/_fair.lua`` followed
by its own file;
nothing of it ever comes from user input.
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


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


def _load() -> dict[str, LuaScript]:
    folder = resources.files("nodedrop.store") / "lua"
    lib = (folder / "_lib.lua").read_text() + "\n" + (folder / "_fair.lua").read_text()
    out = {}
    for name in _NAMES:
        src = lib + "\n" + (folder / f"{name}.lua").read_text()
        out[name] = LuaScript(name, src, hashlib.sha1(src.encode()).hexdigest())
    return out


SCRIPTS = _load()
