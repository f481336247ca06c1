"""Helpers for the personal-threshold tests: exercise sessions fed through the real service
(warm-up at rest, then hard work) up to a chosen estimated rise, where the patient says
"I feel symptoms"."""

from __future__ import annotations

from monitor.model import Sample, SampleKind, SymptomReport, ThermalState
from monitor.service import Monitor

STEP_S = 2.0
REST_S = 150.0
MAX_SESSION_S = 60 * 60.0


async def feed_session(
    monitor: Monitor, patient: str, *, start: float, rise_c: float
) -> tuple[float, ThermalState]:
    """Samples every 2 s from ``start`` (rest, then heart rate 155 bpm) until the engine's
    estimated rise reaches ``rise_c``. Returns the last sample time and the state then."""
    t = start
    while t - start < MAX_SESSION_S:
        hr = 70.0 if t - start < REST_S else 155.0
        await monitor.ingest(Sample(patient, SampleKind.HEART_RATE, hr, t, "hr", "test"))
        await monitor.ingest(Sample(patient, SampleKind.SKIN_TEMP, 34.0, t, "skin", "test"))
        state = monitor.state(patient)
        if state is not None and state.core_delta_c >= rise_c:
            return t, state
        t += STEP_S
    raise AssertionError(f"the estimated rise never reached {rise_c} °C")


async def session_with_symptoms(
    monitor: Monitor, patient: str, *, start: float, rise_c: float
) -> SymptomReport:
    """One session in which the patient reports symptoms at about ``rise_c``."""
    t, _ = await feed_session(monitor, patient, start=start, rise_c=rise_c)
    return monitor.report_symptom(patient, time=t)
