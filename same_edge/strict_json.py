"""Strict JSON, read alike here and by libsame_edge (native/src/json.c): UTF-8, no NaN or
Infinity, numbers within a double's range, no duplicate member names, no NUL or lone surrogate in
a string, values at most ``MAX_JSON_DEPTH`` below the root. Manifests are read with it."""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Any

MAX_JSON_DEPTH = 64  # deepest value below the root: libsame_edge's JSON reader's bound too


def short(value: Any) -> str:
    """A refused value for a one-line error: its repr, bounded in length and nesting (a manifest may nest
    values deeper than repr can recurse, or hold megabytes in one string)."""
    return reprlib.repr(value)


_NOT_IN_STRINGS = re.compile("[\x00\ud800-\udfff]")  # NUL ends a C string; UTF-8 holds no lone surrogate


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:  # which of two values a reader takes is its own choice: refuse both
            raise ValueError(f"duplicate member name {short(key)}")
        seen.add(key)
    return dict(pairs)


def check_values(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse what ``json`` decodes but strict JSON excludes (see the module docstring); also what no
    JSON document holds (a Python caller's own objects)."""
    where = json.dumps(path)[1:-1][:80] if path else "the root"  # one short line, whatever the member names
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"values nest more than {MAX_JSON_DEPTH} deep at {where}")
    if isinstance(value, str):
        if _NOT_IN_STRINGS.search(value):
            raise ValueError(f"a NUL or a lone surrogate in a string at {where}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _NOT_IN_STRINGS.search(key):
                raise ValueError(f"a member name that is not a string, or holds a NUL or a lone surrogate, in {where}")
            check_values(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_values(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int past a double's range
            finite = False
        if not finite:
            raise ValueError(f"NaN, an infinity or a number past a double's range at {where}")
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"a {type(value).__name__} at {where}, which JSON cannot hold")


def loads_json(text: str | bytes) -> Any:
    """Decode strict JSON (UTF-8 if bytes); raises ValueError, or RecursionError for absurd nesting."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_object)
    check_values(value)
    return value
