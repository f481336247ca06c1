"""Subject, stream and bucket names of cluster mode, and the NATS server's share of the
configuration (users, permissions, subject mappings) generated from ``heatmon.toml``.

::

    {prefix}.patients.{patient}.samples|symptoms|ack   gateways, apps, caregivers (MQTT or NATS)
        │ subject mapping: partition = FNV-1a(patient) mod N (the server computes it)
        ▼
    {root}.in.{partition}.{patient}.{channel}          stream {ROOT}_IN, one consumer a partition
    {root}.out.{patient}.{channel}                     stream {ROOT}_OUT (dedup by Nats-Msg-Id)
        │ republished once stored
        ▼
    {prefix}.patients.{patient}.state|alerts|recovered|records   MQTT / NATS subscribers

An MQTT topic becomes a subject with ``/`` → ``.`` and ``.`` → ``//`` (the server's rule),
so a patient id with a dot is one subject token either way (:func:`patient_token`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.mqtt.options import MqttOptions
from monitor.mqtt.topics import INBOUND, Channel, check_patient_id

OUTBOUND = (Channel.STATE, Channel.ALERTS, Channel.RECOVERED)
RECORDS = "records"
"""Out channel of session records, acknowledgements and symptom reports."""
WEB_ACK = "web_ack"
"""In channel of the acknowledgements a worker's dashboard took (a caregiver's, or the
patient's own "I'm cooling down", ``by = "patient:self"``): published by the workers' login
straight to the partition's subject, which no generated permission names, so no caregiver
can send one (their ``ack`` must name a login)."""


def partition_of(token: str, partitions: int) -> int:
    """The partition the server's ``{{partition(n,1)}}`` mapping gives ``token`` (FNV-1a, 32
    bits, modulo ``n``); workers check it so that nothing lands on a foreign partition."""
    h = 0x811C9DC5
    for byte in token.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def patient_token(patient: str) -> str:
    """The subject token of ``patient`` (as the server converts an MQTT topic level)."""
    return check_patient_id(patient, where="subject").replace(".", "//")


def token_patient(token: str) -> str:
    return token.replace("//", ".")


def topic_subject(topic: str) -> str:
    """The NATS subject of an MQTT topic without empty levels."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Names:
    """Every name cluster mode uses on the server, from ``root`` and the topic prefix."""

    root: str
    topic_prefix: str
    partitions: int

    @property
    def in_stream(self) -> str:
        return f"{self.root.upper()}_IN"

    @property
    def out_stream(self) -> str:
        return f"{self.root.upper()}_OUT"

    @property
    def leases(self) -> str:
        return f"{self.root}_leases"

    @property
    def workers(self) -> str:
        return f"{self.root}_workers"

    @property
    def checkpoints(self) -> str:
        return f"{self.root}_checkpoints"

    @property
    def profiles(self) -> str:
        return f"{self.root}_profiles"

    @property
    def ownership_subject(self) -> str:
        return f"{self.root}.ctl.ownership"

    @property
    def patients_subject(self) -> str:
        return f"{topic_subject(self.topic_prefix)}.patients"

    def inbound(self, patient: str, channel: Channel) -> str:
        """Where a native NATS client publishes (the same subject an MQTT gateway reaches)."""
        return f"{self.patients_subject}.{patient_token(patient)}.{channel.value}"

    def outbound(self, patient: str, channel: str) -> str:
        """Where subscribers read ``channel`` of ``patient`` (republished by the out stream)."""
        return f"{self.patients_subject}.{patient_token(patient)}.{channel}"

    def monitor_errors(self, worker: str) -> str:
        """Where operators read every input ``worker`` refused (``…/monitors/{worker}/errors``)."""
        return f"{topic_subject(self.topic_prefix)}.monitors.{worker}.errors"

    def partition(self, patient: str) -> int:
        return partition_of(patient_token(patient), self.partitions)

    def mapped(self, patient: str, channel: Channel) -> str:
        """The stream subject an inbound message of ``patient`` is mapped to."""
        token = patient_token(patient)
        return f"{self.root}.in.{self.partition(patient)}.{token}.{channel.value}"

    def web_ack(self, patient: str) -> str:
        """Where a worker's dashboard publishes an acknowledgement (:data:`WEB_ACK`)."""
        token = patient_token(patient)
        return f"{self.root}.in.{self.partition(patient)}.{token}.{WEB_ACK}"

    def may_publish(self, patient: str, channel: Channel) -> list[str]:
        """A publish permission for ``channel`` of ``patient``: the server checks an MQTT
        publish after the mapping, a NATS publish before it, so both subjects."""
        return [self.inbound(patient, channel), self.mapped(patient, channel)]

    def partition_filter(self, partition: int) -> str:
        return f"{self.root}.in.{partition}.>"

    def out(self, patient: str, channel: str) -> str:
        return f"{self.root}.out.{patient_token(patient)}.{channel}"

    def lease_key(self, partition: int) -> str:
        return f"p{partition}"

    def checkpoint_key(self, partition: int, patient: str) -> str:
        return f"c.{partition}.{patient_token(patient)}"

    def marker_key(self, partition: int) -> str:
        return f"m.{partition}"

    def profile_key(self, patient: str) -> str:
        """The patient's entry in the profiles bucket (:mod:`monitor.cluster.profiles`)."""
        return f"p.{patient_token(patient)}"

    def mappings(self) -> dict[str, str]:
        """Subject mappings that put inbound messages on their patient's partition."""
        n = self.partitions
        return {
            f"{self.patients_subject}.*.{ch.value}": (
                f"{self.root}.in.{{{{partition({n},1)}}}}.{{{{wildcard(1)}}}}.{ch.value}"
            )
            for ch in INBOUND
        }

    def parse_in(self, subject: str) -> tuple[int, str, str]:
        """``(partition, patient, channel)`` of an inbound stream subject."""
        parts = subject.split(".")
        if len(parts) != 5 or parts[0] != self.root or parts[1] != "in":
            raise ValueError(f"not an inbound subject: {subject[:120]!r}")
        return int(parts[2]), token_patient(parts[3]), parts[4]


_VAR = re.compile(r"[^A-Za-z0-9]")


def password_variable(user: str) -> str:
    """The environment variable the generated server configuration reads a password from."""
    return "HEATMON_NATS_PASSWORD_" + _VAR.sub("_", user).upper()


def _perm(publish: Iterable[str], subscribe: Iterable[str]) -> dict[str, object]:
    return {
        "publish": {"allow": sorted(set(publish))},
        "subscribe": {"allow": sorted(set(subscribe))},
    }


def render_authorization(
    names: Names, mqtt: MqttOptions, *, passwords: Mapping[str, str] | None = None
) -> str:
    """The ``authorization`` block and ``mappings`` of a nats-server configuration, from the
    same ``[sinks.mqtt.acl]`` that ``heatmon mqtt acl`` turns into a Mosquitto ACL: a gateway
    publishes only its patients' samples, a caregiver reads only their patients and
    acknowledges their alerts, a patient's app reads its patient and reports symptoms; the
    monitor's login (the workers) may do everything. Passwords come from ``passwords`` or,
    when it is None, from environment variables (:func:`password_variable`) that the server
    resolves at start, so the file holds no secret."""
    acl = mqtt.acl

    def pw(user: str) -> str:
        if passwords is not None:
            return json.dumps(passwords[user])
        return "$" + password_variable(user)

    read_channels = [*OUTBOUND]
    users: list[str] = [
        f"    {{user: {json.dumps(acl.monitor_user)}, password: {pw(acl.monitor_user)}}}"
    ]

    def user(login: str, perm: dict[str, object]) -> None:
        users.append(
            f"    {{user: {json.dumps(login)}, password: {pw(login)}, "
            f"permissions: {json.dumps(perm)}}}"
        )

    for login, patients in sorted(acl.gateways.items()):
        user(
            login,
            _perm(
                (s for p in patients for s in names.may_publish(p, Channel.SAMPLES)),
                (names.outbound(p, Channel.ERRORS.value) for p in patients),
            ),
        )
    for login, patients in sorted(acl.caregivers.items()):
        user(
            login,
            _perm(
                (s for p in patients for s in names.may_publish(p, Channel.ACK)),
                (names.outbound(p, ch.value) for p in patients for ch in read_channels),
            ),
        )
    for login, patients in sorted(acl.apps.items()):
        user(
            login,
            _perm(
                (s for p in patients for s in names.may_publish(p, Channel.SYMPTOMS)),
                (names.outbound(p, ch.value) for p in patients for ch in read_channels),
            ),
        )
    mapping_lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in names.mappings().items()]
    return (
        "# generated by `heatmon cluster natsconf` from heatmon.toml; do not edit by hand\n"
        "authorization {\n  users: [\n"
        + "\n".join(users)
        + "\n  ]\n}\nmappings {\n"
        + "\n".join(mapping_lines)
        + "\n}\n"
    )
