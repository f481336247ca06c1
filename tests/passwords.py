"""Password hashes for seeding test users: argon2id (the real ``hash_password``), made once
per password per test process instead of once per test. Each hash takes 0.3–1 s of CPU on
purpose, and the suite seeds the same few test users for a hundred or so stacks; a login still
verifies the password against a real argon2 hash (salted, the recommended parameters)."""

from __future__ import annotations

import functools

from monitor.web.auth import hash_password


@functools.cache
def seeded_hash(password: str) -> str:
    """``hash_password(password)``, remembered: for users a test sets up, not for the hashing
    a test exercises (call ``hash_password`` there)."""
    return hash_password(password)
