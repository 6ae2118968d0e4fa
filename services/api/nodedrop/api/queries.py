"""Named SQL queries loaded from the package's .sql files.

The format follows procrastinate's queries.sql: each query starts with a
`-- name: <name>` line and runs until the next one. Loading once at import
keeps a typo in a query name a start-up error, not a request-time one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

__all__ = ["POSTGRES", "SQLITE", "load"]

_NAME_RE = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def parse(text: str) -> Mapping[str, str]:
    parts = _NAME_RE.split(text)
    queries: dict[str, str] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = body.strip()
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = sql
    return MappingProxyType(queries)


def load(filename: str) -> Mapping[str, str]:
    path = resources.files("nodedrop.api").joinpath("sql").joinpath(filename)
    return parse(path.read_text(encoding="utf-8"))


POSTGRES = load("queries.sql")
SQLITE = load("sqlite_queries.sql")
