"""The running dashboard follows the care-team store: who may log in (argon2 hashes of
enabled caregivers), their roles, who sees whom, which patient links work, and the patients
themselves (added to the engine and the board; a changed threshold goes to the engine and
to the tiles at once).

A change made through this process is applied right after its transaction commits; a change
made elsewhere (``heatmon admin``, another web instance on the same PostgreSQL) is noticed
within ``poll_s`` by the audit log's newest id, which every change moves. A caregiver who is
disabled, reset or removed loses every session at once, their open live streams included;
a revoked link's phone sessions go the same way.

In cluster mode the engines run in the workers: the dashboard's control has no engine but
``profiles`` (:class:`monitor.cluster.profiles.ClusterProfiles`), and a changed profile is
published there, with who changed it (the audit log's newest entry about the patient) and
when, for every worker to apply; one not published is tried again at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from monitor.careteam.records import CaregiverRecord, PatientRecord
from monitor.careteam.store import CareStore
from monitor.engine import MonitorEngine
from monitor.errors import HeatmonError, InputError
from monitor.profile import PatientProfile
from monitor.web.auth import PatientTokens, Session, same_secret, token_digest

if TYPE_CHECKING:
    from monitor.web.state import WebState

log = logging.getLogger(__name__)

LINK_DIGEST = "link_digest"
"""``Session.extra`` key: the digest of the patient link a phone's session was opened with."""


@runtime_checkable
class ProfilePublisher(Protocol):
    async def publish_profile(
        self, profile: PatientProfile, *, at: float, version: int, who: Callable[[], str]
    ) -> None: ...


class StoreTokens(PatientTokens):
    """Patient links from the store (by digest) besides tokens issued in memory (the demo)."""

    __slots__ = ("links",)

    def __init__(self, *, digests: Mapping[str, str]) -> None:
        super().__init__(digests=digests)
        self.links: dict[str, tuple[str, str]] = {}
        """digest → (link id, patient) of the links that work."""

    def check(self, patient: str, token: str) -> bool:
        if super().check(patient, token):
            return True
        found = self.links.get(token_digest(token))
        return found is not None and same_secret(found[1], patient)

    def works(self, digest: str) -> bool:
        """Whether a link (or a token issued in memory) with this digest still works."""
        return digest in self.links or digest in self._digests.values()


@dataclass(frozen=True, slots=True)
class Snapshot:
    marker: int
    caregivers: tuple[CaregiverRecord, ...]
    assignments: Mapping[str, frozenset[str]]
    links: Mapping[str, tuple[str, str]]
    patients: tuple[PatientRecord, ...]
    thresholds: Mapping[str, tuple[float, float]]
    """patient → (threshold, when) of the newest decision in ``threshold_changes``."""


def load(store: CareStore) -> Snapshot:
    """Everything the dashboard keeps of the store (read in a worker thread)."""
    marker = store.marker()
    return Snapshot(
        marker=marker,
        caregivers=tuple(store.caregivers()),
        assignments=store.assignments(),
        links=store.active_link_digests(),
        patients=tuple(store.patients()),
        thresholds=store.latest_thresholds(),
    )


def in_force(record: PatientRecord, latest: tuple[float, float] | None) -> PatientProfile:
    """The record's profile with the threshold of the newest decision in
    ``threshold_changes``, which holds every one (a typed threshold goes there too, in the
    same transaction as the record). ``heatmon profile accept`` and ``reset`` write the
    record too (:mod:`monitor.careteam.decisions`), in the same transaction where both
    stores share a database; with a thresholds file of its own the record follows a moment
    later, and until then this keeps the engine on the decision."""
    profile = record.profile
    if latest is None or latest[0] == profile.threshold_rise_c:
        return profile
    try:
        return PatientProfile.model_validate(profile.model_dump() | {"threshold_rise_c": latest[0]})
    except ValueError:
        log.warning("care team: a decided threshold of %s does not fit its profile", record.id)
        return profile


class TeamSync:
    """Keeps a :class:`~monitor.web.state.WebState` in step with the store."""

    def __init__(self, *, store: CareStore, state: WebState, poll_s: float = 1.0) -> None:
        self.store = store
        self.state = state
        self.poll_s = poll_s
        self.roles: dict[str, str] = {}
        self.patients: dict[str, PatientRecord] = {}
        self._hashes: dict[str, str] = {}
        self._applied: dict[str, PatientProfile] = {}
        self._unpublished: list[PatientRecord] = []
        self._marker = -1
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()
        """Set whenever a change from the store has been applied (tests wait on it)."""

    @property
    def marker(self) -> int:
        """The newest audit entry this process has applied (every change moves it)."""
        return self._marker

    def role(self, login: str | None) -> str | None:
        return None if login is None else self.roles.get(login)

    def engine(self) -> MonitorEngine | None:
        engine = getattr(self.state.control, "engine", None)
        return engine if isinstance(engine, MonitorEngine) else None

    def publisher(self) -> ProfilePublisher | None:
        """Cluster mode's (the engines are in the workers), else ``None``."""
        found = getattr(self.state.control, "profiles", None)
        return found if isinstance(found, ProfilePublisher) else None

    async def start(self) -> None:
        if not isinstance(self.state.tokens, StoreTokens):
            # The store alone says which links work: [web.patient_tokens] only seeds it
            # (heatmon admin import); tokens issued in memory (the demo) are kept.
            configured = self.state.config.patient_tokens
            issued = getattr(self.state.tokens, "_digests", {})
            self.state.tokens = StoreTokens(
                digests={p: d for p, d in issued.items() if configured.get(p) != d}
            )
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="careteam-poll")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                marker = await asyncio.to_thread(self.store.marker)
                if marker != self._marker:
                    await self.refresh()
            except HeatmonError as err:
                log.warning("care-team store: %s", err)
            except Exception as err:  # the database went away: keep what we have, retry
                log.warning("care-team store unreachable: %s", type(err).__name__)

    async def refresh(self) -> None:
        """Read the store and apply it (after every change made here, and when polled)."""
        async with self._lock:
            snap = await asyncio.to_thread(load, self.store)
            self._apply(snap)
            await self._publish()
        self.changed.set()

    def _who(self, patient: str) -> str:
        """Who made the newest change to ``patient`` (a blocking read of the audit log)."""
        for entry in self.store.audit(patient=patient, limit=20):
            if entry.outcome == "ok":
                return entry.actor
        return "care team"

    async def _publish(self) -> None:
        publisher = self.publisher()
        pending, self._unpublished = self._unpublished, []
        if publisher is None:
            return
        for record in pending:
            try:
                await publisher.publish_profile(
                    record.profile,
                    at=record.updated_at,
                    version=record.version,
                    who=partial(self._who, record.id),
                )
            except Exception as err:  # the cluster is unreachable: again at the next poll
                log.warning("care team: a profile not sent to the cluster (%s)", type(err).__name__)
                self._applied.pop(record.id, None)
                self._marker = -1

    def _cut(self, sessions: list[str]) -> None:
        for sid in sessions:
            self.state.board.close_owner(sid)

    def _apply(self, snap: Snapshot) -> None:
        st = self.state
        self._marker = snap.marker
        enabled = [c for c in snap.caregivers if not c.disabled]
        hashes = {c.login: c.password_hash for c in enabled if c.password_hash}
        gone = {login for login, h in self._hashes.items() if hashes.get(login) != h}
        self._hashes = hashes
        self.roles = {c.login: c.role for c in enabled}
        st.passwords.set_hashes(hashes)
        if gone:  # disabled, reset or removed: every session and stream of theirs ends now
            self._cut(st.sessions.drop_where(lambda s: s.login in gone))
            log.info("care team: sessions of %d caregiver(s) ended", len(gone))
        old = st.assignments
        st.assignments = dict(snap.assignments)
        moved = {
            k for k in set(old) | set(snap.assignments) if old.get(k) != snap.assignments.get(k)
        }
        for login in moved:  # their streams reconnect and subscribe to what they may see now
            for sid in st.sessions.of_login(login):
                st.board.close_owner(sid)
        tokens = st.tokens
        if isinstance(tokens, StoreTokens):
            tokens.links = dict(snap.links)

            def revoked(s: Session) -> bool:
                digest = s.extra.get(LINK_DIGEST)
                return digest is not None and s.patient is not None and not tokens.works(digest)

            self._cut(st.sessions.drop_where(revoked))
        self.patients = {p.id: p for p in snap.patients}
        self._apply_patients(snap.patients, snap.thresholds)

    def _apply_patients(
        self, patients: tuple[PatientRecord, ...], thresholds: Mapping[str, tuple[float, float]]
    ) -> None:
        engine = self.engine()
        learners = [
            hook
            for sink in getattr(self.state.control, "sinks", ())
            if callable(hook := getattr(sink, "add_known_patient", None))
        ]  # e.g. the MQTT sink: a gateway's input for the new patient is taken
        for record in patients:
            profile = in_force(record, thresholds.get(record.id))
            self.state.board.set_display_name(record.id, profile.display_name)
            if engine is not None:
                engine.add_patient(profile)
            for learn in learners:
                learn(record.id)
            if self._applied.get(record.id) == profile:
                continue
            self._applied[record.id] = profile
            shown = profile.effective_threshold_c  # what the engine's states carry
            if engine is None:
                self._unpublished.append(record)  # cluster mode: to the workers' engines
            else:
                try:
                    # the whole edited profile: thresholds at once, calibration next session
                    shown = engine.set_profile(profile).effective_threshold_c
                except InputError as err:
                    log.warning("care team: profile of %s not applied: %s", record.id, err)
                    continue
            self.state.board.show_threshold(record.id, shown)
