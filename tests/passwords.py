"""Password hashes for seeding test users: argon2id (the real ``hash_password``), made once
per password per test process instead of once per test. Each hash takes 0.3–1 s of CPU on
purpose, and the suite seeds the same few test users for a hundred or so stacks; a login still
verifies the password against a real argon2 hash (salted, the recommended parameters)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher

from monitor.web.auth import hash_password


@functools.cache
def seeded_hash(password: str, *, time_cost: int | None = None) -> str:
    """``hash_password(password)``, remembered: for users a test sets up, not for the hashing
    a test exercises (call ``hash_password`` there). With ``time_cost``, a hash with that many
    argon2 passes (a deliberately slow one to check)."""
    if time_cost is None:
        return hash_password(password)
    return PasswordHasher(time_cost=time_cost).hash(password)
