"""What the care-team store returns, and its errors (each with the HTTP status it means)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.errors import HeatmonError
from monitor.profile import PatientProfile

ROLES = ("admin", "clinician", "caregiver")
"""``admin`` manages caregivers, patients and assignments; ``clinician`` changes thresholds
and decides suggestions; ``caregiver`` watches and acknowledges."""

THRESHOLD_FIELDS = frozenset({"threshold_rise_c", "caution_margin_c"})
"""Profile fields only a clinician may change once the patient exists."""


class CareTeamError(HeatmonError):
    """A change the store refused; ``status`` is the HTTP status that says why."""

    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class NotFound(CareTeamError):
    status = 404


class Conflict(CareTeamError):
    """Already exists, or edited by someone else since the version the edit was based on
    (``extra["changes"]`` lists those edits: who, when, before, after)."""

    status = 409


class Invalid(CareTeamError):
    status = 422


class Forbidden(CareTeamError):
    status = 403


@dataclass(frozen=True, slots=True)
class PatientRecord:
    id: str
    profile: PatientProfile
    archived: bool
    version: int
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.profile.display_name,
            "profile": self.profile.model_dump(mode="json", exclude={"id"}),
            "archived": self.archived,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class CaregiverRecord:
    login: str
    role: str
    disabled: bool
    has_password: bool
    invite_pending: bool
    version: int
    updated_at: float
    password_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "role": self.role,
            "disabled": self.disabled,
            "has_password": self.has_password,
            "invite_pending": self.invite_pending,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class LinkRecord:
    id: str
    patient: str
    created_by: str
    created_at: float
    revoked_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "patient": self.patient,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.revoked_at is None,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    kind: str
    subject: str
    patient: str | None
    version: int | None
    outcome: str
    before: Any
    after: Any
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "kind": self.kind,
            "subject": self.subject,
            "patient": self.patient,
            "version": self.version,
            "outcome": self.outcome,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
        }


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)
