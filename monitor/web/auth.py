"""Who may see what: caregiver passwords (argon2), server-side sessions, CSRF tokens, login
rate limiting (:class:`~monitor.ratelimit.WindowLimiter`) and patients' access tokens.

- Sessions of logged-in caregivers and of patients' phones live on the server; the browser
  only holds a random id (256 bits) in an ``HttpOnly; SameSite=Strict`` cookie (``Secure``
  behind HTTPS). A new id is made at login, so an id planted before login is worthless.
- Anonymous visitors cost the server nothing: nothing is stored for them. Their CSRF token
  (for the login form) is a signed double-submit token: an HMAC, under a key made at start,
  of a random nonce that the browser holds in its own ``HttpOnly`` cookie
  (:class:`AnonymousCsrf`). A flood of anonymous requests cannot evict a logged-in session.
- Stored sessions are bounded per person (``MAX_SESSIONS_PER_PRINCIPAL``; a caregiver or a
  patient's phone that logs in again and again only pushes out its own oldest sessions) and
  in total (``max_sessions``, least recently used first).
- Every session carries its own CSRF token; every state-changing request (login, logout,
  acknowledge, symptoms) must send it back in the ``X-CSRF-Token`` header.
- Failed logins are counted per login name and per client address; past the limit the
  answer is ``429`` until the window has passed, whatever the password.
- Patients never get a password: their phone opens ``/patient/<id>?token=...`` once and
  then holds a patient session for that one patient. Only the SHA-256 of a token is kept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

SESSION_COOKIE = "heatmon_session"
ANON_COOKIE = "heatmon_anon"
"""Holds an anonymous visitor's CSRF nonce; nothing about it is stored on the server."""
CSRF_HEADER = "X-CSRF-Token"
SESSION_ID_BYTES = 32
CSRF_BYTES = 32
PATIENT_TOKEN_BYTES = 24
IPV6_LOCKOUT_PREFIX = 64
"""Failed logins and patient-link attempts from IPv6 count per /64 (:func:`address_key`)."""
MAX_SESSIONS_PER_PRINCIPAL = 20
"""Sessions one caregiver (or one patient's phones) may hold; past it their oldest goes."""
ANON_NONCE_BYTES = 32
ANON_KEY_BYTES = 32

Clock = Callable[[], float]


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's recommended parameters) for ``[web.users.X]``."""
    return PasswordHasher().hash(password)


def token_digest(token: str) -> str:
    """What ``[web.patient_tokens]`` stores for a patient's access token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_patient_token() -> tuple[str, str]:
    """A fresh random token and its digest."""
    token = secrets.token_urlsafe(PATIENT_TOKEN_BYTES)
    return token, token_digest(token)


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison; never raises, whatever a client sent (lone surrogates too)."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


class PasswordChecker:
    """Checks caregiver passwords off the event loop (argon2 is slow on purpose).

    Unknown logins are checked against a dummy hash so that the answer takes as long as
    for a known login with a wrong password.
    """

    __slots__ = ("_dummy", "_hasher", "_hashes")

    def __init__(self, *, hashes: Mapping[str, str]) -> None:
        self._hasher = PasswordHasher()
        self._hashes = dict(hashes)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            # bytes: a lone surrogate a client sent is a wrong password, not a 500
            self._hasher.verify(stored or self._dummy, password.encode("utf-8", "surrogatepass"))
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.warning("stored password hash of a caregiver is not a valid argon2 hash")
            return False
        return stored is not None

    def set_hashes(self, hashes: Mapping[str, str]) -> None:
        """Replace the known hashes (the care-team store changed: a caregiver was added,
        disabled or set a password)."""
        self._hashes = dict(hashes)

    async def verify(self, login: str, password: str) -> bool:
        stored = self._hashes.get(login)
        ok = await asyncio.get_running_loop().run_in_executor(None, self._verify, stored, password)
        # Disabled, reset or removed while the slow check ran: the old hash opens nothing
        # (the care team ended the caregiver's sessions before this one would exist).
        return ok and self._hashes.get(login) == stored


@dataclass(slots=True)
class Session:
    """A browser's session: anonymous (only a CSRF token), a caregiver, or a patient."""

    id: str
    csrf: str
    created: float
    last_seen: float
    login: str | None = None
    patient: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.login is not None:
            return "caregiver"
        if self.patient is not None:
            return "patient"
        return "anonymous"


class SessionStore:
    """Sessions of caregivers and patients in memory (anonymous visitors have none).

    Bounded twice: at most ``max_per_principal`` a caregiver (or a patient), their least
    recently used going first, and at most ``max_sessions`` in all, least recently used
    first. Expired sessions are dropped when met and, oldest first, whenever one is made.
    """

    __slots__ = (
        "_by_principal",
        "_clock",
        "_max",
        "_max_per_principal",
        "_on_drop",
        "_sessions",
        "_ttl_s",
    )

    def __init__(
        self,
        *,
        ttl_s: float,
        max_sessions: int,
        max_per_principal: int = MAX_SESSIONS_PER_PRINCIPAL,
        clock: Clock = time.time,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self._on_drop = on_drop
        """Told the id of every session dropped, whatever the reason (logout, expiry, pushed
        out by a bound, revoked): the dashboard ends that session's streams."""
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._max_per_principal = max_per_principal
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._by_principal: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def _principal(session: Session) -> str:
        if session.login is not None:
            return "login:" + session.login
        return "patient:" + (session.patient or "")

    def new(self, *, login: str | None = None, patient: str | None = None) -> Session:
        """A session for caregiver ``login`` or for ``patient`` (exactly one of them)."""
        if (login is None) == (patient is None):
            raise ValueError("a stored session is for one caregiver or one patient")
        now = self._clock()
        self._prune(now)
        session = Session(
            id=secrets.token_urlsafe(SESSION_ID_BYTES),
            csrf=secrets.token_urlsafe(CSRF_BYTES),
            created=now,
            last_seen=now,
            login=login,
            patient=patient,
        )
        mine = self._by_principal.setdefault(self._principal(session), OrderedDict())
        while len(mine) >= self._max_per_principal:
            self.drop(next(iter(mine)))
        self._sessions[session.id] = session
        mine[session.id] = None
        while len(self._sessions) > self._max:
            self.drop(next(iter(self._sessions)))
        return session

    def _prune(self, now: float) -> None:
        """Drop expired sessions; the least recently seen are at the front."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self._ttl_s:
                break
            self.drop(oldest.id)

    def expire(self, session_id: str) -> bool:
        """Drop ``session_id`` if it went unused for longer than the TTL (its streams end
        with it: ``on_drop``), without counting this as a use; whether it is gone. A live
        stream is no use of its session: it shows data, nobody asks for it."""
        session = self._sessions.get(session_id)
        if session is not None and self._clock() - session.last_seen > self._ttl_s:
            self.drop(session_id)
        return session_id not in self._sessions

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._ttl_s:
            self.drop(session_id)
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        self._by_principal[self._principal(session)].move_to_end(session_id)
        return session

    def drop(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        key = self._principal(session)
        mine = self._by_principal.get(key)
        if mine is not None:
            mine.pop(session_id, None)
            if not mine:
                del self._by_principal[key]
        if self._on_drop is not None:
            self._on_drop(session_id)

    def drop_where(self, predicate: Callable[[Session], bool]) -> list[str]:
        """Drop every session ``predicate`` holds for; their ids (to close their streams)."""
        gone = [sid for sid, s in self._sessions.items() if predicate(s)]
        for sid in gone:
            self.drop(sid)
        return gone

    def of_login(self, login: str) -> list[str]:
        """The ids of ``login``'s sessions."""
        return list(self._by_principal.get("login:" + login, ()))

    def drop_login(self, login: str) -> None:
        for sid in list(self._by_principal.get("login:" + login, ())):
            self.drop(sid)


class AnonymousCsrf:
    """CSRF tokens for visitors without a session (the login form), with nothing stored.

    The browser holds a random nonce in the ``heatmon_anon`` cookie (``HttpOnly``, so a
    script cannot read it); the token is an HMAC-SHA256 of that nonce under a key made when
    the server starts. A request passes when its ``X-CSRF-Token`` is the HMAC of its own
    cookie's nonce: another site can neither read the cookie nor compute the HMAC. A
    restart changes the key (the login page then asks for a fresh token and retries).
    """

    __slots__ = ("_key",)

    def __init__(self, *, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(ANON_KEY_BYTES)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(ANON_NONCE_BYTES)

    def token(self, nonce: str) -> str:
        mac = hmac.new(
            self._key, b"heatmon-anon-csrf:" + nonce.encode("utf-8", "surrogatepass"), "sha256"
        )
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def check(self, nonce: str | None, sent: str | None) -> bool:
        if not nonce or not sent or len(nonce) > 4 * ANON_NONCE_BYTES:
            return False
        return same_secret(self.token(nonce), sent)


def address_key(remote: str | None) -> str:
    """The lockout key of a client's address: an IPv4 address as it is, an IPv6 address by
    its /``IPV6_LOCKOUT_PREFIX`` (one subscriber's network: an attacker there can take any
    of 2**64 addresses, and would escape a lockout by address with each); an IPv4-mapped
    IPv6 address as its IPv4 address. What is not an address is kept as it is."""
    text = remote or "unknown"
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # no zone: fe80::1%eth0
    except ValueError:
        return "addr:" + text
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "addr:" + str(address.ipv4_mapped)
        net = ipaddress.IPv6Network((address, IPV6_LOCKOUT_PREFIX), strict=False)
        return "addr:" + str(net)
    return "addr:" + str(address)


class PatientTokens:
    """Patients' access tokens, by digest. Tokens can be added at run time (the demo does)."""

    __slots__ = ("_digests",)

    def __init__(self, *, digests: Mapping[str, str]) -> None:
        self._digests = dict(digests)

    def check(self, patient: str, token: str) -> bool:
        digest = self._digests.get(patient)
        return digest is not None and same_secret(digest, token_digest(token))

    def issue(self, patient: str) -> str:
        """A new token for ``patient`` (replacing the old one); returns the token."""
        token, digest = new_patient_token()
        self._digests[patient] = digest
        return token

    def __contains__(self, patient: object) -> bool:
        return patient in self._digests
