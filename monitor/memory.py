"""Measure the memory an object holds (used by the state-size test and benchmark)."""

from __future__ import annotations

import enum
import sys
import types
from typing import Any

_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, enum.Enum)


def deep_sizeof(obj: Any) -> int:
    """Bytes reachable from ``obj``, counting each object once; classes, functions, modules
    and enum members (shared by every patient) are not counted."""
    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP) or o is None:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        if hasattr(o, "__dict__"):
            stack.append(vars(o))
        for cls in type(o).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(o, name):
                    stack.append(getattr(o, name))
    return total
