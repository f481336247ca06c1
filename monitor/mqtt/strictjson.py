"""Strict JSON for inbound MQTT payloads: bounded in size and nesting **before** parsing,
UTF-8 only, no ``NaN``/``Infinity``. Deeply nested JSON would otherwise make Python's parser
(or a schema validator after it) recurse until it fails; a size and a depth limit checked on
the raw bytes make that impossible, at C speed on the hot path."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from monitor.errors import InputError

MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger inbound payloads are rejected before they are parsed."""
MAX_DEPTH = 8
"""Nesting of arrays and objects allowed in an inbound payload (a batch needs 4); deeper
payloads are refused before they are parsed."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number in JSON")


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(payload: bytes) -> int:
    """How deeply arrays and objects nest in ``payload`` (JSON text), found without parsing
    it: strings are cut out, the brackets left are counted (C speed, for the hot path)."""
    if b"[" not in payload and b"{" not in payload:
        return 0
    if b'\\"' in payload:  # an escaped quote: cut the strings out properly (slower)
        outside = _STRINGS.sub(b"", payload)
    else:  # every other quote opens or closes a string
        outside = b"".join(payload.split(b'"')[0::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
"""``\\ud800``…``\\udfff``: the only way JSON text can name a UTF-16 surrogate."""


def lone_surrogate(raw: bytes, doc: Any) -> bool:
    """Whether ``doc`` (parsed from ``raw``) holds a string with a lone surrogate: JSON
    lets ``"\\ud800"`` through, but no encoder (UTF-8 for InfluxDB, MQTT, a database) takes
    it, so one such note would fail every later write of the batch it is in. Only a payload
    that escapes a surrogate at all is looked at again (a valid pair is one character)."""
    if _SURROGATE_ESCAPE.search(raw) is None:
        return False
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(
    payload: bytes, *, where: str, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Strict JSON: size and nesting limits (checked before parsing), UTF-8 (no lone
    surrogate escaped either), no NaN/Infinity, no number that does not fit a float."""
    if len(payload) > max_bytes:
        raise InputError(f"payload of {len(payload)} bytes exceeds {max_bytes} bytes", where=where)
    depth = nesting_depth(payload)
    if depth > max_depth:
        raise InputError(
            f"payload nests {depth} levels deep; at most {max_depth} are allowed", where=where
        )
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise InputError(f"payload is not UTF-8 ({err.reason})", where=where) from err
    except (json.JSONDecodeError, ValueError) as err:
        raise InputError(f"payload is not JSON ({str(err)[:120]})", where=where) from err
    except RecursionError as err:  # cannot happen below MAX_DEPTH; never crash the reader
        raise InputError("payload nests too deeply", where=where) from err
    if lone_surrogate(payload, doc):
        raise InputError("payload holds a lone UTF-16 surrogate (\\ud800…\\udfff)", where=where)
    return doc
