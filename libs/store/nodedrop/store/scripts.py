"""The Lua scripts, loaded once per connection pool and run with EVALSHA.

Each script is the static text of ``lua/_lib.lua``, ``lua/_fair.lua`` and
``lua/_acquire.lua`` followed by its own file; nothing of it ever comes from
user input.
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
    lib = "\n".join((folder / f"{part}.lua").read_text() for part in ("_lib", "_fair", "_acquire"))
    out = {}
    for name in _NAMES:
        src = lib + "\n" + (folder / f"{name}.lua").read_text()
        out[name] = LuaScript(name, src, hashlib.sha1(src.encode()).hexdigest())
    return out


SCRIPTS = _load()
