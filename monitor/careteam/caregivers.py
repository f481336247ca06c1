"""Caregivers (argon2 hashes, roles, one-time invitations) and who sees whom, in the
care-team store. Every change is one transaction with its audit entry."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from monitor.careteam import schema as t
from monitor.careteam.base import StoreBase
from monitor.careteam.records import (
    ROLES,
    CaregiverRecord,
    Conflict,
    Invalid,
    NotFound,
)
from monitor.web.auth import token_digest
from monitor.web.config import LOGIN_PATTERN

INVITE_TOKEN_BYTES = 24
INVITE_TTL_S = 7 * 86_400.0
"""An invitation (or a reset) link works once, for a week."""


def _caregiver(row: Row[Any]) -> CaregiverRecord:
    return CaregiverRecord(
        login=row.login,
        role=row.role,
        disabled=bool(row.disabled),
        has_password=row.password_hash is not None,
        invite_pending=row.invite_digest is not None,
        version=int(row.version),
        updated_at=float(row.updated_at),
        password_hash=row.password_hash,
    )


def _public(record: CaregiverRecord) -> dict[str, Any]:
    return {"role": record.role, "disabled": record.disabled}


class CaregiverMixin(StoreBase):
    def caregivers(self) -> list[CaregiverRecord]:
        with self.engine.connect() as conn:
            return [
                _caregiver(r)
                for r in conn.execute(select(t.caregivers).order_by(t.caregivers.c.login))
            ]

    def caregiver(self, login: str) -> CaregiverRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.caregivers).where(t.caregivers.c.login == login)).first()
        if row is None:
            raise NotFound(f"no caregiver {login!r}")
        return _caregiver(row)

    def add_caregiver(
        self, login: str, role: str, *, by: str, password_hash: str | None = None
    ) -> tuple[CaregiverRecord, str | None]:
        """A new caregiver and their one-time invitation token (``None`` when a password
        hash is given, as ``heatmon admin import`` does)."""
        if not re.fullmatch(LOGIN_PATTERN.strip("^$"), login):
            raise Invalid(
                "login: 1 to 64 letters, digits or ._@- (starting with a letter or digit)"
            )
        if role not in ROLES:
            raise Invalid(f"role: one of {', '.join(ROLES)}")
        token = None if password_hash else secrets.token_urlsafe(INVITE_TOKEN_BYTES)
        now = self.clock()
        with self.transaction() as conn:
            exists = conn.execute(select(t.caregivers.c.login).where(t.caregivers.c.login == login))
            if exists.first() is not None:
                raise Conflict(f"login {login!r} is already taken")
            conn.execute(
                insert(t.caregivers).values(
                    login=login,
                    role=role,
                    password_hash=password_hash,
                    invite_digest=None if token is None else token_digest(token),
                    invite_expires=None if token is None else now + INVITE_TTL_S,
                    disabled=False,
                    version=1,
                    updated_at=now,
                )
            )
            self.audit_entry(
                conn,
                actor=by,
                action="caregiver.add",
                kind="caregiver",
                subject=login,
                version=1,
                after={"role": role, "disabled": False},
            )
        record = CaregiverRecord(
            login, role, False, password_hash is not None, token is not None, 1, now
        )
        return record, token

    def update_caregiver(
        self,
        login: str,
        *,
        based_on: int,
        by: str,
        role: str | None = None,
        disabled: bool | None = None,
        reset: bool = False,
    ) -> tuple[CaregiverRecord, str | None]:
        """Change role / disabled, or ``reset`` (password forgotten: a new one-time link,
        the old password no longer works). Returns the record and the reset token."""
        if role is not None and role not in ROLES:
            raise Invalid(f"role: one of {', '.join(ROLES)}")
        now = self.clock()
        token = secrets.token_urlsafe(INVITE_TOKEN_BYTES) if reset else None
        with self.transaction() as conn:
            row = conn.execute(select(t.caregivers).where(t.caregivers.c.login == login)).first()
            if row is None:
                raise NotFound(f"no caregiver {login!r}")
            old = _caregiver(row)
            values: dict[str, Any] = {"updated_at": now}
            if role is not None:
                values["role"] = role
            if disabled is not None:
                values["disabled"] = disabled
            if token is not None:
                values |= {
                    "password_hash": None,
                    "invite_digest": token_digest(token),
                    "invite_expires": now + INVITE_TTL_S,
                }
            self.update_versioned(
                conn,
                table=t.caregivers,
                key=t.caregivers.c.login,
                kind="caregiver",
                subject=login,
                current=old,
                based_on=based_on,
                values=values,
            )
            new = _caregiver(
                conn.execute(select(t.caregivers).where(t.caregivers.c.login == login)).one()
            )
            before, after = _public(old), _public(new)
            if reset:
                before["password"], after["password"] = "set" if old.has_password else None, "reset"
            action = "caregiver.reset" if reset else "caregiver.edit"
            if disabled is not None and disabled != old.disabled and role is None:
                action = "caregiver.disable" if disabled else "caregiver.enable"
            self.audit_entry(
                conn,
                actor=by,
                action=action,
                kind="caregiver",
                subject=login,
                version=new.version,
                before={k: v for k, v in before.items() if after.get(k) != v},
                after={k: v for k, v in after.items() if before.get(k) != v},
            )
        return new, token

    def invited(self, token: str) -> str | None:
        """The login a still valid invitation ``token`` is for; ``None`` if it is unknown,
        used, expired or its caregiver disabled (checked before the slow password hash)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.caregivers).where(t.caregivers.c.invite_digest == token_digest(token))
            ).first()
        if row is None or row.disabled or (row.invite_expires or 0) < self.clock():
            return None
        return str(row.login)

    def accept_invite(self, token: str, password_hash: str) -> str:
        """Set the password of the caregiver invited with ``token`` (once); their login."""
        now = self.clock()
        digest = token_digest(token)
        invalid = "this invitation is not valid (used, expired or revoked)"
        with self.transaction() as conn:
            row = conn.execute(
                select(t.caregivers).where(t.caregivers.c.invite_digest == digest)
            ).first()
            if row is None or row.disabled or (row.invite_expires or 0) < now:
                raise NotFound(invalid)
            done = conn.execute(
                update(t.caregivers)
                .where(
                    t.caregivers.c.login == row.login,
                    t.caregivers.c.invite_digest == digest,
                    t.caregivers.c.version == row.version,
                )
                .values(
                    password_hash=password_hash,
                    invite_digest=None,
                    invite_expires=None,
                    version=row.version + 1,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:  # used (or changed) by another transaction meanwhile
                raise NotFound(invalid)
            self.audit_entry(
                conn,
                actor=row.login,
                action="caregiver.invite_accepted",
                kind="caregiver",
                subject=row.login,
                version=row.version + 1,
                after={"password": "set"},
            )
        return str(row.login)

    # -- who sees whom --------------------------------------------------------------------

    def assignments(self) -> dict[str, frozenset[str]]:
        """login → the patients (not archived) assigned to them."""
        query = (
            select(t.assignments.c.login, t.assignments.c.patient)
            .join(t.patients, t.patients.c.id == t.assignments.c.patient)
            .where(t.patients.c.archived.is_(False))
        )
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for login, patient in conn.execute(query):
                out.setdefault(login, set()).add(patient)
        return {k: frozenset(v) for k, v in out.items()}

    def assign(self, login: str, patient: str, *, by: str, assigned: bool = True) -> bool:
        """Assign (or unassign) ``patient`` to ``login``; whether anything changed."""
        with self.transaction() as conn:
            for table, key, value in (
                (t.caregivers, t.caregivers.c.login, login),
                (t.patients, t.patients.c.id, patient),
            ):
                if conn.execute(select(key).where(key == value)).first() is None:
                    raise NotFound(f"no {table.name[:-1]} {value!r}")
            where = (t.assignments.c.login == login, t.assignments.c.patient == patient)
            has = conn.execute(select(t.assignments).where(*where)).first() is not None
            if has == assigned:
                return False
            if assigned:
                conn.execute(insert(t.assignments).values(login=login, patient=patient))
            else:
                conn.execute(delete(t.assignments).where(*where))
            self.audit_entry(
                conn,
                actor=by,
                action="assign" if assigned else "unassign",
                kind="assignment",
                subject=login,
                patient=patient,
                before={"assigned": has},
                after={"assigned": assigned},
            )
        return True
