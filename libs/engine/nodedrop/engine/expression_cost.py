"""The cost of a CEL expression, estimated before it runs.

The CEL binding evaluates in native code and holds the GIL throughout, so an
evaluation can neither be interrupted nor moved off the event loop by a
thread: its cost has to be known before it starts. Each expression gets a
static shape when it compiles (how deeply its comprehension macros nest,
and whether a ``map`` builds its results from something other than its own
element); each costly evaluation is then priced from the sizes of the values
it is given:

    cost = W * refs + macros * max over nestings of (S ** scans * C(S) ** builds)
                   * (W if fans_out else 1)

W counts the JSON values (every scalar, list and object, and a string per 32
characters) in the variables the expression reads, which is what converting
them into CEL costs; refs is how many times the expression names a variable,
which bounds how many copies of them its result can hold; S is the
longest list or object among them, which bounds what one comprehension level
iterates. ``all``/``exists`` levels (scans) cost S each; ``map``/``filter``
levels (builds) cost C(S) = S * max(1, S / 16), because the binding copies
the list it builds on every step (a map over 4,000 elements costs about 200
times one over 1,000). When a ``map`` may return a value as big as its
inputs for each element, so may its result. The estimate is an upper bound
for the standard macros; CEL has no loops or recursion besides them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Shape", "measure", "shape_of"]

_MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter"})
_MACRO_CALL = re.compile(r"\.\s*([A-Za-z_]\w*)\s*$")
_IDENT = re.compile(r"(?<![.\w])([A-Za-z_]\w*)(?!\w)(?!\s*\()")
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_VARIABLES = re.compile(r"(?<![.\w])(?:json|items|nodes|trigger|execution)(?!\w)")
# Characters of a string counted as one value.
_STRING_UNIT = 32
# Copying one element of a list being built costs about this fraction of a step.
_COPY_RATIO = 16
_BUILDS = frozenset({"map", "filter"})


@dataclass(frozen=True, slots=True)
class Shape:
    depth: int = 0
    fans_out: bool = False
    # Occurrences of the expression's variables (json, items, ...).
    refs: int = 1
    # Comprehension macros, and the (scans, builds) of each nesting chain.
    macros: int = 0
    chains: tuple[tuple[int, int], ...] = ()

    def iterations(self, longest: int) -> int:
        """Upper bound of the comprehension steps over lists of ``longest`` elements."""
        if not self.chains:
            return 0
        s = max(longest, 1)
        build = s * max(1, s // _COPY_RATIO)
        return int(self.macros * max(s**scans * build**builds for scans, builds in self.chains))


def _blank_strings(source: str) -> str:
    """``source`` with the contents of string and bytes literals replaced by spaces,
    so brackets and names inside them are not taken for code."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c not in "'\"":
            out.append(c)
            i += 1
            continue
        quote = source[i : i + 3] if source[i : i + 3] in ("'''", '"""') else c
        raw = i > 0 and source[i - 1] in "rR"
        j = i + len(quote)
        while j < n and not source.startswith(quote, j):
            j += 2 if source[j] == "\\" and not raw else 1
        end = min(j + len(quote), n)
        out.append(quote + " " * max(0, end - i - 2 * len(quote)) + quote)
        i = end
    return "".join(out)


class _Frame:
    __slots__ = ("commas", "macro", "start")

    def __init__(self, macro: str | None, start: int) -> None:
        self.macro = macro
        self.start = start
        self.commas: list[int] = []


def shape_of(source: str) -> Shape:
    """The comprehension shape of ``source`` (which compiled, so its brackets balance)."""
    text = _blank_strings(source)
    refs = len(_VARIABLES.findall(text))
    if "(" not in text:
        return Shape(0, False, refs)
    stack: list[_Frame] = []
    # (start, end, variable) of every macro call, and which of them are maps.
    spans: list[tuple[int, int, str, bool, list[int]]] = []
    chains: set[tuple[int, int]] = set()
    macros = 0
    for i, c in enumerate(text):
        if c in "([{":
            macro = None
            if c == "(":
                m = _MACRO_CALL.search(text, 0, i)
                if m is not None and m.group(1) in _MACROS:
                    macro = m.group(1)
                    macros += 1
                    open_ = [f.macro for f in stack if f.macro is not None] + [macro]
                    builds = sum(1 for name in open_ if name in _BUILDS)
                    chains.add((len(open_) - builds, builds))
            stack.append(_Frame(macro, i + 1))
        elif c in ")]}":
            if not stack:
                continue
            frame = stack.pop()
            if frame.macro is not None and frame.commas:
                var = text[frame.start : frame.commas[0]].strip()
                spans.append((frame.start, i, var, frame.macro == "map", frame.commas))
        elif c == "," and stack:
            stack[-1].commas.append(i)
    if not macros:
        return Shape(0, False, refs)
    depth = max(a + b for a, b in chains)
    fans_out = any(_fans_out(text, span, spans) for span in spans if span[3])
    return Shape(depth, fans_out, refs, macros, tuple(sorted(chains)))


def _fans_out(
    text: str,
    span: tuple[int, int, str, bool, list[int]],
    spans: list[tuple[int, int, str, bool, list[int]]],
) -> bool:
    """True when a map's transform reads a name besides its own variable (and the
    variables of macros inside it): such a result can be as big as that name's
    value for every element."""
    _start, end, var, _, commas = span
    body_start = commas[-1] + 1
    bound = {var} | {s[2] for s in spans if body_start <= s[0] and s[1] <= end}
    names = set(_IDENT.findall(text, body_start, end))
    return bool(names - bound - _KEYWORDS)


def measure(value: Any) -> tuple[int, int]:
    """(JSON values inside ``value``, length of its longest list or object)."""
    count = 0
    longest = 0
    stack = [value]
    while stack:
        v = stack.pop()
        count += 1
        if isinstance(v, str):
            count += len(v) // _STRING_UNIT
            continue
        if isinstance(v, Mapping):
            n = len(v)
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            n = len(v)
            stack.extend(v)
        else:
            continue
        longest = max(longest, n)
    return count, longest
