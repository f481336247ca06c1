"""The MQTT topic tree (v1), under a configurable prefix (default ``heatmon/v1``).

::

    {prefix}/patients/{patient}/samples     gateway → monitor   (QoS 1)
    {prefix}/patients/{patient}/symptoms    patient → monitor   (QoS 1)
    {prefix}/patients/{patient}/ack         caregiver → monitor (QoS 1)
    {prefix}/patients/{patient}/state       monitor → all       (retained)
    {prefix}/patients/{patient}/alerts      monitor → all       (QoS 1)
    {prefix}/patients/{patient}/recovered   monitor → all       (QoS 1)
    {prefix}/patients/{patient}/errors      monitor → gateway   (why its input was rejected)
    {prefix}/monitors/{instance}/status     monitor → all       (retained, last will "offline")
    {prefix}/monitors/{instance}/errors     monitor → operators (every rejection)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from monitor.errors import ConfigError, InputError
from monitor.profile import PATIENT_ID_PATTERN

DEFAULT_PREFIX = "heatmon/v1"
_PATIENT_RE = re.compile(PATIENT_ID_PATTERN)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class Channel(StrEnum):
    """The last level of a patient topic."""

    SAMPLES = "samples"
    SYMPTOMS = "symptoms"
    ACK = "ack"
    STATE = "state"
    ALERTS = "alerts"
    RECOVERED = "recovered"
    ERRORS = "errors"


INBOUND = (Channel.SAMPLES, Channel.SYMPTOMS, Channel.ACK)
"""What the monitor subscribes to."""


def check_patient_id(patient: str, *, where: str = "") -> str:
    """Return ``patient`` if it is a valid pseudonym (so also free of ``/``, ``+``, ``#``)."""
    if not _PATIENT_RE.fullmatch(patient):
        bad = sorted({c for c in patient if c in "/+#"})
        why = f"contains {' '.join(repr(c) for c in bad)}" if bad else "is not a valid pseudonym"
        raise InputError(
            f"patient id {patient[:70]!r} {why} (letters, digits, '.', '_', '-'; at most 64)",
            where=where,
        )
    return patient


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses heatmon topics under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ConfigError(
                f"mqtt.topic_prefix {self.prefix!r}: levels of letters, digits, '.', '_', '-' "
                "separated by '/', no wildcards, no leading or trailing '/'"
            )

    def patient(self, patient: str, channel: Channel) -> str:
        check_patient_id(patient, where="topic")
        return f"{self.prefix}/patients/{patient}/{channel.value}"

    def status(self, instance: str) -> str:
        return f"{self.prefix}/monitors/{instance}/status"

    def monitor_errors(self, instance: str) -> str:
        return f"{self.prefix}/monitors/{instance}/errors"

    def subscription(self, channel: Channel) -> str:
        """The filter that matches ``channel`` for every patient."""
        return f"{self.prefix}/patients/+/{channel.value}"

    def without_patient(self, topic: str) -> str:
        """``topic`` for a log, its patient segment (which may be a raw id when it is no
        pseudonym) left out: ``…/patients/…/samples``."""
        head = f"{self.prefix}/patients/"
        if not topic.startswith(head):
            return topic[:200]
        _, sep, channel = topic[len(head) :].rpartition("/")
        return f"{head}…/{channel[:40]}" if sep else f"{head}…"

    def parse(self, topic: str) -> tuple[str, Channel]:
        """``(patient, channel)`` of a patient topic; :class:`InputError` if it is not one."""
        head = f"{self.prefix}/patients/"
        if not topic.startswith(head):
            raise InputError("not a heatmon patient topic", where=topic)
        rest = topic[len(head) :]
        patient, sep, channel = rest.rpartition("/")
        if not sep:
            raise InputError("not a heatmon patient topic", where=topic)
        check_patient_id(patient, where=topic)
        try:
            return patient, Channel(channel)
        except ValueError:
            raise InputError(f"unknown channel {channel!r}", where=topic) from None
