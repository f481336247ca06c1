"""The engine: pure, no I/O. Samples and times in; thermal state and events out.

``MonitorEngine`` holds one :class:`PatientEngine` a patient and is the one API the rest of
heatmon (service, replay, tests) uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from monitor.config import EngineConfig
from monitor.engine.estimators import ESTIMATORS, ECTempEstimator, Estimator, HeatBalanceEstimator
from monitor.engine.patient import QUIET, PatientEngine, StepResult
from monitor.errors import InputError
from monitor.model import Event, Sample, SampleFlag, SessionRecord, SymptomReport, ThermalState
from monitor.profile import PatientProfile

__all__ = [
    "ESTIMATORS",
    "SYMPTOM_MATCH_S",
    "ECTempEstimator",
    "Estimator",
    "HeatBalanceEstimator",
    "MonitorEngine",
    "PatientEngine",
    "StepResult",
]

SYMPTOM_MATCH_S = 60.0
"""A symptom report dated further than this from the engine's latest estimate (or before
its session began) is not given that estimate's rise or session: the estimate says nothing
of that moment."""


class MonitorEngine:
    """Every patient's engine. Unknown patients are refused unless ``default_profile`` makes
    one (replay does; the live service does not)."""

    __slots__ = ("_config", "_default_profile", "_engines", "_nows", "_profiles")

    def __init__(
        self,
        *,
        profiles: Mapping[str, PatientProfile],
        config: EngineConfig | None = None,
        default_profile: Callable[[str], PatientProfile] | None = None,
    ) -> None:
        self._config = config or EngineConfig()
        self._profiles = dict(profiles)
        self._default_profile = default_profile
        self._engines: dict[str, PatientEngine] = {}
        self._nows: tuple[float, ...] = ()
        """The last two times ``advance`` was given: a new patient's engine learns them."""

    @property
    def patients(self) -> list[str]:
        return sorted(set(self._profiles) | set(self._engines))

    def engine(self, patient: str) -> PatientEngine:
        engine = self._engines.get(patient)
        if engine is None:
            profile = self._profiles.get(patient)
            if profile is None:
                if self._default_profile is None:
                    raise InputError(f"unknown patient {patient!r}", where="engine")
                profile = self._default_profile(patient)
                self._profiles[patient] = profile
            engine = self._engines[patient] = PatientEngine(profile=profile, config=self._config)
            for now in self._nows:
                engine.note_clock(now)
        return engine

    def ingest(self, sample: Sample) -> StepResult:
        return self.engine(sample.patient).ingest(sample)

    def adopt(self, engine: PatientEngine) -> None:
        """Take over a patient's engine restored from a checkpoint (cluster mode). Its
        clock is the old owner's at the checkpoint, seconds to hours ago: it learns this
        one's, as a new engine does (kept, it would flag as ``future``, and drop, every
        replayed sample more than a few ticks after the checkpoint)."""
        engine.forget_clock()
        for now in self._nows:
            engine.note_clock(now)
        self._profiles.setdefault(engine.profile.id, engine.profile)
        self._engines[engine.profile.id] = engine

    def release(self, patient: str) -> PatientEngine | None:
        """Hand a patient's engine back (another cluster worker owns the patient now)."""
        return self._engines.pop(patient, None)

    def ingest_batch(self, samples: Sequence[Sample]) -> list[StepResult | InputError]:
        """:meth:`ingest` for each sample of a batch (one gateway message), in order: its
        result, or the :class:`InputError` that refused it (the others go on)."""
        out: list[StepResult | InputError] = []
        for sample in samples:
            try:
                out.append(self.engine(sample.patient).ingest(sample))
            except InputError as err:
                out.append(err)
        return out

    def advance(self, now: float) -> StepResult:
        self._nows = (*self._nows[-1:], now)
        states: list[ThermalState] = []
        events: list[Event] = []
        records: list[SessionRecord] = []
        for engine in self._engines.values():
            r = engine.advance(now)
            states.extend(r.states)
            events.extend(r.events)
            records.extend(r.records)
        if not (states or events or records):
            return QUIET[SampleFlag.OK]
        return StepResult(SampleFlag.OK, tuple(states), tuple(events), tuple(records))

    def close(self) -> Iterator[StepResult]:
        for engine in self._engines.values():
            yield engine.close()

    def report_symptom(self, patient: str, *, time: float, note: str = "") -> SymptomReport:
        """``patient`` feels symptoms at ``time``: with the current session if ``time`` is
        in it, and its estimated rise if ``time`` is also within :data:`SYMPTOM_MATCH_S` of
        the estimate; a report dated elsewhere (the MQTT input takes them up to 7 days old)
        is kept without them, so the rise of now is never put to the symptoms of then."""
        engine = self.engine(patient)
        state = engine.state
        session = engine.session
        if session is not None and time < engine.session_start - SYMPTOM_MATCH_S:
            session = None  # before the session began
        near = state is not None and abs(time - state.time) <= SYMPTOM_MATCH_S
        return SymptomReport(
            patient=patient,
            time=time,
            session=session or "",
            core_delta_c=state.core_delta_c if state is not None and session and near else None,
            note=note,
        )

    def add_patient(self, profile: PatientProfile) -> None:
        """A patient added while running (the care team's store); a known one keeps its
        engine (:meth:`set_threshold` and :meth:`set_profile` change a running patient)."""
        if profile.id not in self._profiles:
            self._profiles[profile.id] = profile

    def set_threshold(self, patient: str, threshold_rise_c: float) -> PatientProfile:
        """Change ``patient``'s cool-down threshold while running (only ever because a
        person accepted it: :mod:`monitor.thresholds`). Raises :class:`InputError`."""
        engine = self.engine(patient)
        profile = engine.set_threshold(threshold_rise_c)
        self._profiles[patient] = profile
        return profile

    def set_profile(self, profile: PatientProfile) -> PatientProfile:
        """Use an edited profile while running (only ever because a person changed it: the
        care team's store). Raises :class:`InputError`."""
        engine = self._engines.get(profile.id)
        if engine is not None:
            engine.set_profile(profile)
        self._profiles[profile.id] = profile
        return profile

    def state(self, patient: str) -> ThermalState | None:
        engine = self._engines.get(patient)
        return engine.state if engine is not None else None

    def profile(self, patient: str) -> PatientProfile | None:
        return self._profiles.get(patient)
