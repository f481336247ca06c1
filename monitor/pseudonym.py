"""Pseudonymous patient ids: a keyed hash (HMAC-SHA-256) of a raw id such as a clinic number.

The same raw id and key always give the same pseudonym, so series from different recordings
join; without the key a pseudonym cannot be traced back. The key lives in the environment
(``HEATMON_PSEUDONYM_KEY``), never in files, logs or the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping

from monitor.errors import ConfigError

KEY_ENV = "HEATMON_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
PSEUDONYM_CHARS = 12
"""Base32 characters kept (60 bits)."""


def pseudonymize(raw_id: str, *, key: bytes) -> str:
    """``p-`` followed by 12 lower-case base32 characters of HMAC-SHA-256(key, raw id)."""
    digest = hmac.new(key, raw_id.strip().encode("utf-8"), hashlib.sha256).digest()
    return "p-" + base64.b32encode(digest).decode("ascii")[:PSEUDONYM_CHARS].lower()


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The pseudonymisation key from ``HEATMON_PSEUDONYM_KEY`` (at least 16 bytes)."""
    value = (os.environ if environ is None else environ).get(KEY_ENV, "")
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{KEY_ENV} must be set to a secret of at least {MIN_KEY_BYTES} characters "
            "(keep it out of files and logs; the same key gives the same pseudonyms)"
        )
    return key
