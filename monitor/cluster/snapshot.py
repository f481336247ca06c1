"""A patient engine's state as bytes and back, generically.

The serializer walks the object graph (slots, ``__dict__``, dataclasses, named tuples,
enums, containers, floats including ±inf and NaN) instead of naming fields, so a change to
the estimator's or the risk machine's fields needs no change here. Only classes of heatmon
itself (``monitor.*``) and a few plain builtins can be restored, so a checkpoint cannot make
the worker build anything else; pydantic models (profile, engine config) are stored as
their validated data. The format carries a version and a fingerprint of the attribute names
of every class it holds: a checkpoint written by a different engine version is refused
(:class:`SnapshotError`) rather than restored into a half-matching object.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import json
import math
from array import array
from collections import deque
from typing import Any

from pydantic import BaseModel

from monitor.errors import HeatmonError

FORMAT_VERSION = 1
MAX_DEPTH = 32
ARRAY_TYPECODES = frozenset("bBhHiIlLqQfd")
"""Number arrays a checkpoint may hold."""
_ALLOWED_PREFIX = "monitor."


class SnapshotError(HeatmonError):
    """A checkpoint could not be written or read back."""


def _cls_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(name: str) -> type:
    module, _, qual = name.partition(":")
    if not module.startswith(_ALLOWED_PREFIX) or not qual:
        raise SnapshotError(f"class {name[:100]!r} is not one a checkpoint may hold")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise SnapshotError(f"class {name[:100]!r} does not exist here") from err
    if not isinstance(obj, type):
        raise SnapshotError(f"{name[:100]!r} is not a class")
    return obj


def _attr_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__weakref__", "__dict__") and slot not in names:
                names.append(slot)
    return names


class _Encoder:
    def __init__(self) -> None:
        self.classes: dict[str, list[str]] = {}

    def encode(self, obj: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise SnapshotError("engine state nests too deep to checkpoint")
        if isinstance(obj, enum.Enum):  # before str: StrEnum members are strings
            return {"E": _cls_name(type(obj)), "v": obj.value}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"F": repr(obj)}
        if isinstance(obj, BaseModel):
            return {"M": _cls_name(type(obj)), "v": obj.model_dump(mode="json")}
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return {
                "N": _cls_name(type(obj)),
                "v": [self.encode(x, depth + 1) for x in obj],
            }
        if isinstance(obj, tuple):
            return {"T": [self.encode(x, depth + 1) for x in obj]}
        if isinstance(obj, list):
            return [self.encode(x, depth + 1) for x in obj]
        if isinstance(obj, deque):
            return {"Q": [self.encode(x, depth + 1) for x in obj], "n": obj.maxlen}
        if isinstance(obj, array):  # a compact ring of numbers (the engine's copy check)
            values = obj.tolist()
            if obj.typecode in "fd" and not all(map(math.isfinite, values)):
                values = [self.encode(x, depth + 1) for x in values]
            return {"A": values, "t": obj.typecode}
        if isinstance(obj, dict):
            return {
                "D": [
                    [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in obj.items()
                ]
            }
        cls = type(obj)
        if not cls.__module__.startswith(_ALLOWED_PREFIX):
            raise SnapshotError(f"cannot checkpoint a {_cls_name(cls)}")
        names = _attr_names(cls)
        attrs = {n: getattr(obj, n) for n in names if hasattr(obj, n)}
        attrs.update(getattr(obj, "__dict__", {}))
        self.classes[_cls_name(cls)] = sorted(names) if names else sorted(attrs)
        return {
            "O": _cls_name(cls),
            "a": {k: self.encode(v, depth + 1) for k, v in attrs.items()},
        }


def _decode(doc: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise SnapshotError("checkpoint nests too deep")
    if doc is None or isinstance(doc, (bool, str, int, float)):
        return doc
    if isinstance(doc, list):
        return [_decode(x, depth + 1) for x in doc]
    if not isinstance(doc, dict) or len(doc) > 2:
        raise SnapshotError("checkpoint has an unknown node")
    if "F" in doc:
        value = float(doc["F"])
        if math.isfinite(value):
            raise SnapshotError("checkpoint has a bad non-finite float")
        return value
    if "T" in doc:
        return tuple(_decode(x, depth + 1) for x in doc["T"])
    if "Q" in doc:
        return deque((_decode(x, depth + 1) for x in doc["Q"]), maxlen=doc.get("n"))
    if "D" in doc:
        return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in doc["D"]}
    if "A" in doc:
        typecode = doc.get("t")
        if typecode not in ARRAY_TYPECODES:
            raise SnapshotError(f"checkpoint has an array of unknown type {typecode!r}")
        values = doc["A"]
        if not isinstance(values, list):
            raise SnapshotError("checkpoint has an array that is not a list")
        try:
            if all(type(x) in (int, float) for x in values):  # the usual case, in one go
                return array(typecode, values)
            return array(typecode, (_decode(x, depth + 1) for x in values))
        except (TypeError, OverflowError) as err:
            raise SnapshotError(f"checkpoint has a bad {typecode!r} array: {err}") from err
    if "E" in doc:
        cls = _resolve(doc["E"])
        return cls(doc["v"])
    if "M" in doc:
        cls = _resolve(doc["M"])
        if not issubclass(cls, BaseModel):
            raise SnapshotError(f"{doc['M'][:100]!r} is not a model")
        return cls.model_validate(doc["v"])
    if "N" in doc:
        cls = _resolve(doc["N"])
        return cls(*(_decode(x, depth + 1) for x in doc["v"]))
    if "O" in doc:
        cls = _resolve(doc["O"])
        obj: Any = object.__new__(cls)
        for key, value in doc["a"].items():
            object.__setattr__(obj, key, _decode(value, depth + 1))
        return obj
    raise SnapshotError("checkpoint has an unknown node")


def _fingerprint_of(classes: dict[str, list[str]]) -> str:
    text = json.dumps(sorted(classes.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dumps(obj: Any, *, extra: dict[str, Any] | None = None, max_bytes: int) -> bytes:
    """``obj`` (and plain JSON ``extra``) as compact JSON; :class:`SnapshotError` if it
    holds something a checkpoint may not, or is larger than ``max_bytes``."""
    enc = _Encoder()
    body = enc.encode(obj)
    doc = {
        "v": FORMAT_VERSION,
        "fp": _fingerprint_of(enc.classes),
        "classes": enc.classes,
        "state": body,
        "extra": extra or {},
    }
    data = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > max_bytes:
        raise SnapshotError(f"checkpoint of {len(data)} bytes is over the {max_bytes}-byte limit")
    return data


def loads(data: bytes, *, max_bytes: int) -> tuple[Any, dict[str, Any]]:
    """The object and ``extra`` that :func:`dumps` stored. Refuses another format version
    or a checkpoint whose classes no longer have the attributes it holds."""
    if len(data) > max_bytes:
        raise SnapshotError(f"checkpoint of {len(data)} bytes is over the {max_bytes}-byte limit")
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise SnapshotError(f"checkpoint is not JSON: {err}") from err
    except RecursionError as err:  # nested deeper than the interpreter's stack
        raise SnapshotError("checkpoint is nested too deeply") from err
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise SnapshotError(
            f"checkpoint format {doc.get('v') if isinstance(doc, dict) else None!r} "
            f"is not {FORMAT_VERSION}"
        )
    classes = doc.get("classes")
    if not isinstance(classes, dict) or _fingerprint_of(classes) != doc.get("fp"):
        raise SnapshotError("checkpoint's class list does not match its fingerprint")
    for name, attrs in classes.items():
        slots = _attr_names(_resolve(name))
        if slots and sorted(slots) != attrs:
            raise SnapshotError(
                f"{name}: fields changed since the checkpoint was written "
                "(a worker of another version wrote it)"
            )
    extra = doc.get("extra")
    return _decode(doc["state"]), extra if isinstance(extra, dict) else {}
