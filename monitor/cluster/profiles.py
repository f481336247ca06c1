"""Profile changes people made (an accepted personal threshold, a care-team profile edit) in
cluster mode: published durably by the worker whose dashboard (or thresholds sink) accepted
them, applied by every worker to the engines it owns and to the ones it restores later.

One key a patient in the key-value bucket ``{root}_profiles`` (``p.{patient}``) holds the
patient's whole profile as the newest accepted change left it, with what changed, who
accepted it and when. A writer reads the entry, and writes with a compare-and-set on its
revision only when its change is newer (``at``) and differs, so concurrent writers never
lose each other's change and an old decision re-sent (a worker starting, a poll) never
overwrites a newer one. Every worker watches the bucket from its start, before it claims a
partition: the newest entry of each patient replaces the configured profile in the
worker's profiles (a partition restored later uses it, whatever threshold its checkpoint
held) and in the running engine, if the worker owns the patient.

Checked on receipt like every other input (the workers' login alone may write the bucket,
but a worker of another version, or a person with that login, may have): at most
:data:`MAX_PROFILE_BYTES`, JSON of the known shape, a configured patient whose key it is, a
valid profile, a change a person makes (``by``), an accepted suggestion never below the
floor of :func:`monitor.thresholds.learner.floor_for`, a reset only to the configured
threshold or to the one the care team last set by hand (``hand_set_c``: a ``profile.edit``
entry's threshold, carried forward by every later entry of the patient, so a worker that
starts after the edit still knows it). A refused entry is counted and logged (the reason,
never the patient or the person) and the worker goes on with what it had.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from monitor.cluster.subjects import Names
from monitor.errors import HeatmonError, InputError
from monitor.mqtt.topics import check_patient_id
from monitor.profile import THRESHOLD_ABOVE_C, THRESHOLD_MAX_C, PatientProfile
from monitor.thresholds.floor import floor_for
from monitor.thresholds.records import ThresholdChange

if TYPE_CHECKING:
    from monitor.cluster.worker import ClusterWorker

log = logging.getLogger(__name__)

FORMAT = 1
MAX_PROFILE_BYTES = 8192
"""A profile change larger than this is refused (a profile is about 600 bytes)."""
CHANGES = ("threshold.accept", "threshold.reset", "profile.edit")
"""What a person does: accept a suggested threshold, go back to the configured one, edit the
profile in the care-team store. Nothing else changes a profile."""
MAX_BY = 64
MAX_AHEAD_S = 3600.0
"""A change dated further ahead of this worker's clock is refused: newest wins, so one dated
far in the future (a worker with a wrong clock) would block every later change."""
WRITE_TRIES = 8
INITIAL_LOAD_S = 30.0
"""How long a starting worker waits for the bucket's entries before it claims partitions."""
_BY = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_BY}}}")


class ProfileWriteError(HeatmonError):
    """A profile change could not be written (the bucket kept changing, or is unreachable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileChange:
    patient: str
    profile: PatientProfile
    change: str
    by: str
    at: float
    suggestion: str | None = None
    version: int | None = None
    hand_set_c: float | None = None
    """The threshold the care team last set by hand (in a ``profile.edit``), where a reset
    may go back to instead of the configured one; ``None`` if it never did."""

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": FORMAT,
                "patient": self.patient,
                "change": self.change,
                "by": self.by,
                "at": self.at,
                "suggestion": self.suggestion,
                "version": self.version,
                "hand_set_c": self.hand_set_c,
                "profile": self.profile.model_dump(mode="json"),
            }
        ).encode()


def _pydantic(err: ValidationError) -> str:
    """The fields and rules a profile broke, without the values (they may be ids)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in err.errors()]
    return "; ".join(parts)[:300]


def decode_change(
    data: bytes, *, key: str, names: Names, configured: Mapping[str, PatientProfile]
) -> ProfileChange:
    """A bucket entry back into a change, checked. Raises :class:`InputError` (the reason
    names no patient and no person)."""
    where = "profiles"
    if len(data) > MAX_PROFILE_BYTES:
        raise InputError(f"larger than {MAX_PROFILE_BYTES} bytes", where=where)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError("not JSON (or nested too deeply)", where=where) from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT:
        raise InputError(f"not a profile change of format {FORMAT}", where=where)
    patient = doc.get("patient")
    if not isinstance(patient, str):
        raise InputError("patient: a string", where=where)
    try:
        check_patient_id(patient, where=where)
    except InputError:
        raise InputError("patient: not a valid id", where=where) from None
    if names.profile_key(patient) != key:
        raise InputError("patient is not the one of the key", where=where)
    if patient not in configured:
        raise InputError("patient is not one of this cluster's patients", where=where)
    change, by, at = doc.get("change"), doc.get("by"), doc.get("at")
    if change not in CHANGES:
        raise InputError("change: not one a person makes", where=where)
    if not isinstance(by, str) or not _BY.fullmatch(by):
        raise InputError(f"by: who accepted it (1–{MAX_BY} characters)", where=where)
    if (
        isinstance(at, bool)
        or not isinstance(at, int | float)
        or not 0 < at <= time.time() + MAX_AHEAD_S
    ):
        raise InputError(
            f"at: when it was accepted (epoch seconds, at most {MAX_AHEAD_S:.0f} s ahead)",
            where=where,
        )
    suggestion, version = doc.get("suggestion"), doc.get("version")
    if suggestion is not None and (not isinstance(suggestion, str) or len(suggestion) > 64):
        raise InputError("suggestion: an id", where=where)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2**31
    ):
        raise InputError("version: a positive integer", where=where)
    hand_set_c = doc.get("hand_set_c")
    if hand_set_c is not None and (
        isinstance(hand_set_c, bool)
        or not isinstance(hand_set_c, int | float)
        or not THRESHOLD_ABOVE_C < hand_set_c <= THRESHOLD_MAX_C
    ):
        raise InputError("hand_set_c: a threshold (°C) or null", where=where)
    raw = doc.get("profile")
    if not isinstance(raw, dict):
        raise InputError("profile: an object", where=where)
    try:
        profile = PatientProfile.model_validate(raw)
    except ValidationError as err:
        raise InputError(f"profile: {_pydantic(err)}", where=where) from None
    if profile.id != patient:
        raise InputError("profile: of another patient", where=where)
    base = configured[patient]
    if change == "threshold.accept":
        if suggestion is None:
            raise InputError("an accepted threshold names its suggestion", where=where)
        floor = floor_for(profile)
        if profile.threshold_rise_c < floor:
            raise InputError(f"threshold below the floor {floor:+.2f} °C", where=where)
    elif change == "threshold.reset" and profile.threshold_rise_c not in (
        base.threshold_rise_c,
        hand_set_c,
    ):
        raise InputError(
            "a reset goes back to the configured threshold, or the one the care team set by "
            "hand, only",
            where=where,
        )
    elif change == "profile.edit":
        if hand_set_c is not None and hand_set_c != profile.threshold_rise_c:
            raise InputError("hand_set_c: an edit's is its own threshold", where=where)
        hand_set_c = profile.threshold_rise_c  # (entries of before it was carried: none)
    return ProfileChange(
        patient=patient,
        profile=profile,
        change=change,
        by=by,
        at=float(at),
        suggestion=suggestion,
        version=version,
        hand_set_c=None if hand_set_c is None else float(hand_set_c),
    )


class ClusterProfiles:
    """The worker's side: :meth:`start` applies the bucket's entries (before any partition
    is claimed) and follows it; :meth:`publish_threshold` and :meth:`publish_profile` are
    what this worker's thresholds sink and dashboard call when a person accepted a change."""

    def __init__(self, *, worker: ClusterWorker, kv: KeyValue) -> None:
        self.w = worker
        self.kv = kv
        self.names = worker.names
        self.configured: dict[str, PatientProfile] = dict(worker.profiles)
        """The TOML's profiles: the base of a change, what a reset goes back to."""
        self.revisions: dict[str, int] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    # -- receiving ------------------------------------------------------------------------

    async def start(self) -> None:
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._follow(self._watcher), name="cluster-profiles")
        try:
            await asyncio.wait_for(self._loaded.wait(), INITIAL_LOAD_S)
        except TimeoutError:
            log.warning("profiles: not all read within %.0f s; going on", INITIAL_LOAD_S)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except Exception as err:  # the connection may be closing already
                log.info("profiles: watcher stop failed (%s)", type(err).__name__)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the bucket's entries at start are all applied
                self._loaded.set()
                continue
            try:
                self.receive(entry.key, entry.value or b"", entry.revision, entry.operation)
            except Exception as err:  # a bug here must not stop the following
                self.w.count("profiles_errors")
                log.error("profiles: %s", type(err).__name__)
            if entry.delta == 0:
                self._loaded.set()

    def receive(self, key: str, data: bytes, revision: int | None, operation: str | None) -> None:
        """One bucket entry: checked, then in use for the patient (engine, restores)."""
        if operation in (KV_DEL, KV_PURGE):
            self.w.count("profiles_deleted")  # heatmon never deletes one: keep what we have
            return
        try:
            change = decode_change(data, key=key, names=self.names, configured=self.configured)
            if revision is not None and revision <= self.revisions.get(change.patient, 0):
                return  # seen already (the watcher restarted)
            self.w.monitor.engine.set_profile(change.profile)
        except InputError as err:
            self.w.count("profiles_refused")
            log.warning("profiles: a profile change refused: %s", err.reason)
            return
        self.w.profiles[change.patient] = change.profile
        if revision is not None:
            self.revisions[change.patient] = revision
        self.w.count("profiles_applied")
        log.info(
            "profiles: %s applied (a patient of partition %d, threshold %+.2f °C)",
            change.change,
            self.names.partition(change.patient),
            change.profile.threshold_rise_c,
        )

    # -- publishing -----------------------------------------------------------------------

    async def publish_threshold(self, change: ThresholdChange) -> None:
        """A threshold a person accepted (or reset) in the thresholds store: the patient's
        newest profile with it. Raises :class:`ProfileWriteError` or a NATS error."""
        if change.patient not in self.configured:
            self.w.count("profiles_unknown_patient")
            return

        def make(current: ProfileChange | None) -> ProfileChange | None:
            base = current.profile if current is not None else self.configured[change.patient]
            try:
                profile = PatientProfile.model_validate(
                    {**base.model_dump(), "threshold_rise_c": change.threshold_c}
                )
            except ValidationError as err:
                raise InputError(
                    f"threshold not valid: {_pydantic(err)}", where="profiles"
                ) from None
            return ProfileChange(
                patient=change.patient,
                profile=profile,
                change="threshold.accept" if change.suggestion else "threshold.reset",
                by=change.set_by,
                at=change.set_at,
                suggestion=change.suggestion,
                hand_set_c=current.hand_set_c if current is not None else None,
            )

        await self._write(change.patient, make)

    async def publish_profile(
        self, profile: PatientProfile, *, at: float, version: int, who: Callable[[], str]
    ) -> None:
        """A profile edited in the care-team store (``who``: a blocking look-up of the
        person, made only when the change is written)."""
        if profile.id not in self.configured:
            self.w.count("profiles_unknown_patient")
            return
        if profile == self.configured[profile.id] and not await self._exists(profile.id):
            return  # the configured profile, never changed: nothing to tell the workers
        by = await asyncio.to_thread(who)

        def make(current: ProfileChange | None) -> ProfileChange | None:
            return ProfileChange(
                patient=profile.id,
                profile=profile,
                change="profile.edit",
                by=by[:MAX_BY] or "care team",
                at=at,
                version=version,
                hand_set_c=profile.threshold_rise_c,
            )

        await self._write(profile.id, make)

    async def _exists(self, patient: str) -> bool:
        try:
            await self.kv.get(self.names.profile_key(patient))
        except KeyNotFoundError:
            return False
        return True

    async def _write(
        self, patient: str, make: Callable[[ProfileChange | None], ProfileChange | None]
    ) -> None:
        """Compare-and-set: written only if newer than the entry and different from it."""
        key = self.names.profile_key(patient)
        for _ in range(WRITE_TRIES):
            current: ProfileChange | None = None
            revision: int | None = None
            try:
                entry = await self.kv.get(key)
                revision = entry.revision
                current = decode_change(
                    entry.value or b"", key=key, names=self.names, configured=self.configured
                )
            except KeyNotFoundError:
                pass
            except InputError:
                pass  # a refused entry: replaced by this change
            new = make(current)
            if new is None:
                return
            if current is not None and (current.at > new.at or current.profile == new.profile):
                return  # a newer change is there, or this one is in use already
            try:
                if revision is None:
                    await self.kv.create(key, new.encode())
                else:
                    await self.kv.update(key, new.encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone wrote in between: read again
            self.w.count("profiles_published")
            return
        raise ProfileWriteError(f"the profile entry changed {WRITE_TRIES} times while written")
