"""``heatmon admin import``: seed the care-team store from the TOML file (patients,
``[web.users]`` with their argon2 hashes and assignments, ``[web.patient_tokens]`` as
patient links). What is already in the store is kept (counted as skipped), so running it
twice changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, select

from monitor.careteam import schema as t
from monitor.careteam.records import Conflict
from monitor.careteam.store import CareStore
from monitor.config import HeatmonConfig
from monitor.web.config import parse_web_config

IMPORT_ROLE = "clinician"
"""Imported caregivers may do what an assigned caregiver could in a configuration-only
deployment (accept suggestions); ``--admin LOGIN`` makes some of them admins."""


@dataclass
class ImportCounts:
    added: int = 0
    skipped: int = 0


def import_config(
    store: CareStore, config: HeatmonConfig, *, by: str, admins: Iterable[str] = ()
) -> ImportCounts:
    counts = ImportCounts()
    admin_set = set(admins)
    web = parse_web_config(config.web)
    for profile in config.patients:
        try:
            store.add_patient(profile, by=by)
            counts.added += 1
        except Conflict:
            counts.skipped += 1
    known = {p.id for p in store.patients(archived=True)}
    for login, user in web.users.items():
        role = "admin" if login in admin_set else IMPORT_ROLE
        try:
            store.add_caregiver(login, role, by=by, password_hash=user.password_hash)
            counts.added += 1
        except Conflict:
            counts.skipped += 1
        for patient in user.patients:
            if patient in known and store.assign(login, patient, by=by):
                counts.added += 1
    for patient, digest in web.patient_tokens.items():
        if patient not in known:
            continue
        with store.transaction() as conn:
            if conn.execute(
                select(t.patient_links).where(t.patient_links.c.digest == digest)
            ).first():
                counts.skipped += 1
                continue
            link = str(uuid.uuid4())
            conn.execute(
                insert(t.patient_links).values(
                    id=link, patient=patient, digest=digest, created_by=by, created_at=store.clock()
                )
            )
            store.audit_entry(
                conn,
                actor=by,
                action="link.import",
                kind="link",
                subject=link,
                patient=patient,
                after={"link": link},
            )
            counts.added += 1
    return counts
