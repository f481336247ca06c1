"""The ``thresholds`` sink: learns each patient's onset rise and keeps suggestions and
decisions, with a person in charge of every change.

* Every symptom report the service hands to its sinks is kept (with the estimated rise and
  its sd at that moment) in the :class:`~monitor.thresholds.store.ThresholdStore`, and in
  the same transaction the patient's pending suggestion is brought up to date
  (:func:`monitor.engine.learning.evaluate`).
* A caregiver accepts or rejects a suggestion (dashboard or ``heatmon profile``); the
  decision is stored with who and when, and an accepted threshold is applied to the running
  engine at once (from the dashboard) or within ``poll_s`` (from the command line, another
  process). At start every stored personal threshold is applied before any sample arrives.
* Nothing else ever changes a threshold.
* In cluster mode the engines run in the workers: an accepted threshold is published
  (:meth:`ThresholdLearner.publish_to`, :mod:`monitor.cluster.profiles`) for the worker that
  owns the patient, now or later, instead of applied to a local engine.

``submit_*`` only update memory and queue: the store is written from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from monitor.backoff import Backoff
from monitor.engine import MonitorEngine
from monitor.engine.learning import DEFAULT_RULES, Report, Rules, evaluate
from monitor.errors import InputError
from monitor.model import (
    Acknowledgement,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import PluginContext, Sink, validate_options
from monitor.profile import PatientProfile
from monitor.strict import StrictModel
from monitor.thresholds.floor import check_acceptable, floor_for
from monitor.thresholds.location import open_store, shared_url, store_path
from monitor.thresholds.records import Draft, StoredReport, Suggestion, ThresholdChange, new_id
from monitor.thresholds.store import ThresholdStore, Within

log = logging.getLogger(__name__)

STORE_ERRORS = (sqlite3.Error, OSError, SQLAlchemyError)

POLL_S = 5.0
"""How often decisions made by another process (``heatmon profile accept``) are picked up."""
MAX_QUEUED = 1000
"""Symptom reports waiting for the store; more are dropped, counted and logged."""


class ThresholdOptions(StrictModel):
    """``[sinks.thresholds]``: ``path`` of the SQLite file (default
    ``<data_dir>/thresholds.sqlite``), ``poll_s``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = ""
    poll_s: float = Field(default=POLL_S, gt=0.05, le=3600)


def make_draft(
    reports: Sequence[StoredReport],
    personal_c: float | None,
    *,
    profile: PatientProfile,
    rules: Rules = DEFAULT_RULES,
) -> Draft | None:
    """The suggestion the reports support for ``profile``'s patient, if any: the prior is
    centred on the configured threshold; ``personal_c`` is the threshold in force."""
    current = profile.threshold_rise_c if personal_c is None else personal_c
    result = evaluate(
        (
            Report(session=r.session, time=r.time, rise_c=r.rise_c, sd_c=r.rise_sd_c, id=r.id)
            for r in reports
        ),
        prior_mean_c=profile.threshold_rise_c,
        current_c=current,
        floor_c=floor_for(profile, rules),
        rules=rules,
    )
    if result.suggested_c is None:
        return None
    post = result.posterior
    return Draft(
        current_c=current,
        suggested_c=result.suggested_c,
        onset_mean_c=post.mean_c,
        onset_sd_c=post.sd_c,
        prior_mean_c=profile.threshold_rise_c,
        n_reports=post.n_reports,
        n_sessions=post.n_sessions,
        reason=result.reason,
        evidence=tuple(r.id for r in result.onsets),
    )


class ThresholdLearner(Sink):
    """See the module. ``profiles`` are the configured ones (the prior's centre); patients
    without one get the default profile."""

    name = "thresholds"

    def __init__(
        self,
        *,
        path: Path | str,
        profiles: Mapping[str, PatientProfile],
        rules: Rules = DEFAULT_RULES,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
        context: PluginContext | None = None,
        url: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.url = url
        """The care team's PostgreSQL (``None``: the SQLite file at ``path``)."""
        self._profiles = dict(profiles)
        self._rules = rules
        self._poll_s = poll_s
        self._clock = clock
        self._context = context
        self._engine: MonitorEngine | None = None
        self._publish: Callable[[ThresholdChange], Awaitable[None]] | None = None
        self._store: ThresholdStore | None = None
        self._queue: asyncio.Queue[StoredReport] = asyncio.Queue(maxsize=MAX_QUEUED)
        self._latest: dict[str, tuple[str, float, float]] = {}
        self._applied: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = {}
        self.stored = asyncio.Event()
        """Set whenever a report has been stored (tests and tools wait on it)."""
        self.applied = asyncio.Event()
        """Set whenever a personal threshold has been applied to the engine."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        opts = validate_options(ThresholdOptions, options, section="sinks.thresholds")
        config = context.config
        profiles = {p.id: p for p in getattr(config, "patients", ())}
        return cls(
            path=store_path(config, {"path": opts.path}),
            url=shared_url(config, {"path": opts.path}),
            profiles=profiles,
            poll_s=opts.poll_s,
            context=context,
        )

    def attach(self, engine: MonitorEngine) -> None:
        """The engine accepted thresholds are applied to (else the context's monitor's)."""
        self._engine = engine

    def publish_to(self, publish: Callable[[ThresholdChange], Awaitable[None]]) -> None:
        """Cluster mode: the engines run in the workers, so an accepted threshold is handed
        to ``publish`` (:meth:`monitor.cluster.profiles.ClusterProfiles.publish_threshold`)
        instead of a local engine; one not published yet is tried again every poll."""
        self._publish = publish

    def profile(self, patient: str) -> PatientProfile:
        """The configured profile (the centre of the prior)."""
        found = self._profiles.get(patient)
        return found if found is not None else PatientProfile(id=patient)

    def profile_now(self, patient: str) -> PatientProfile:
        """The profile the engine uses now (the care team may have edited it), else the
        configured one: what an accepted threshold must fit."""
        found = self._engine.profile(patient) if self._engine is not None else None
        return found if found is not None else self.profile(patient)

    def floor(self, patient: str) -> float:
        return floor_for(self.profile_now(patient), self._rules)

    def _draft(self, reports: Sequence[StoredReport], personal_c: float | None) -> Draft | None:
        if not reports:
            return None
        return make_draft(reports, personal_c, profile=self.profile(reports[0].patient))

    # -- lifetime ---------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> ThresholdStore:
        if self._store is None:
            raise RuntimeError("the thresholds sink is not started")
        return self._store

    async def start(self) -> None:
        if self._engine is None and self._context is not None:
            engine = getattr(self._context.monitor, "engine", None)
            if isinstance(engine, MonitorEngine):
                self._engine = engine
        self._store = await asyncio.to_thread(open_store, path=self.path, url=self.url)
        await self.sync()
        self._tasks = [
            asyncio.create_task(self._write_reports(), name="thresholds-writer"),
            asyncio.create_task(self._poll(), name="thresholds-poll"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        store, self._store = self._store, None
        if store is None:
            return
        while not self._queue.empty():
            item = self._queue.get_nowait()
            try:
                store.add_report(item, suggest=self._draft)
            except STORE_ERRORS as err:
                self._count("report_lost")
                log.error("thresholds: a symptom report could not be stored at stop: %s", err)
        store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- from the service -----------------------------------------------------------------

    def submit_state(self, state: ThermalState) -> None:
        # A report is weighed by how repeatable the estimate is for this person (the filter's
        # SD), not by the band shown, whose model term is a per-person error that a threshold
        # set on the estimate absorbs (docs/physiology.md, "Personal thresholds").
        sd = state.filter_sd_c if state.filter_sd_c is not None else state.core_temp_sd_c
        self._latest[state.patient] = (state.session, sd, state.threshold_rise_c)

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        if not isinstance(record, SymptomReport):
            return
        latest = self._latest.get(record.patient)
        same = latest is not None and latest[0] == record.session
        item = StoredReport(
            id=new_id(),
            patient=record.patient,
            session=record.session,
            time=record.time,
            rise_c=record.core_delta_c,
            rise_sd_c=latest[1] if same and latest is not None else None,
            threshold_c=latest[2] if same and latest is not None else None,
            received=self._clock(),
        )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._count("report_dropped")
            log.error("thresholds: symptom report dropped, %d waiting for the store", MAX_QUEUED)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def _write_reports(self) -> None:
        while True:
            item = await self._queue.get()
            backoff = Backoff()
            while True:
                try:
                    await asyncio.to_thread(self.store.add_report, item, suggest=self._draft)
                    break
                except STORE_ERRORS as err:
                    self._count("store_errors")
                    delay = backoff.next_delay()
                    log.warning("thresholds: store failed (%s); retrying in %.1f s", err, delay)
                    await asyncio.sleep(delay)
            self._count("reports_stored")
            self.stored.set()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.sync()
            except STORE_ERRORS as err:
                self._count("store_errors")
                log.warning("thresholds: could not read decisions: %s", err)

    # -- decisions ----------------------------------------------------------------------

    async def sync(self) -> None:
        """Apply every stored personal threshold that the engine does not use yet."""
        currents = await asyncio.to_thread(self.store.currents)
        for patient, change in currents.items():
            if self._applied.get(patient) != change.threshold_c:
                await self._use(change)

    async def _use(self, change: ThresholdChange) -> None:
        if self._publish is None:
            self._apply(change)
            return
        try:
            await self._publish(change)
        except Exception as err:  # the cluster is unreachable, or the entry kept changing
            self._count("publish_errors")
            log.warning(
                "thresholds: an accepted threshold not published yet (%s); again within %.0f s",
                type(err).__name__,
                self._poll_s,
            )
            return
        self._applied[change.patient] = change.threshold_c
        self.applied.set()

    def _apply(self, change: ThresholdChange) -> None:
        engine = self._engine
        if engine is None:
            return
        try:
            engine.set_threshold(change.patient, change.threshold_c)
        except InputError as err:
            self._count("apply_errors")
            log.warning("thresholds: a stored threshold was not applied: %s", err.reason)
            return
        self._applied[change.patient] = change.threshold_c
        self.applied.set()
        log.info("thresholds: personal threshold %+.2f °C in use", change.threshold_c)

    async def decide(
        self,
        patient: str,
        suggestion_id: str,
        *,
        accept: bool,
        by: str,
        within: Within | None = None,
    ) -> tuple[Suggestion, ThresholdChange | None]:
        """A person's decision; an accepted threshold is in use when this returns.
        ``within`` runs inside the decision's transaction (the care team's record of it).
        Raises :class:`~monitor.thresholds.store.SuggestionError`."""
        if accept:
            found = await asyncio.to_thread(self.store.suggestion, suggestion_id)
            if found is not None and found.patient == patient and found.status == "pending":
                check_acceptable(found.suggested_c, self.profile_now(patient))
        suggestion, change = await asyncio.to_thread(
            self.store.decide,
            suggestion_id,
            patient=patient,
            accept=accept,
            by=by,
            at=self._clock(),
            within=within,
        )
        if change is not None:
            await self._use(change)
        return suggestion, change

    def threshold(self, patient: str) -> float:
        """The threshold in force (personal if one was accepted, else configured)."""
        applied = self._applied.get(patient)
        return applied if applied is not None else self.profile(patient).threshold_rise_c
