"""Home Assistant MQTT discovery: each patient appears as a device with three sensors (alert
level, heart rate, estimated rise of core temperature) read from the retained state topic,
with no configuration in Home Assistant. Only the pseudonym is shown, never a name.

Topics: ``<discovery_prefix>/sensor/<node_id>/<object_id>/config`` (retained).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from monitor.mqtt.topics import Channel, Topics, check_patient_id


class Discovery(NamedTuple):
    topic: str
    payload: bytes


_SENSORS: tuple[tuple[str, str, Mapping[str, Any]], ...] = (
    (
        "level",
        "Heat alert level",
        MappingProxyType(
            {
                "value_template": "{{ value_json.level }}",
                "device_class": "enum",
                "options": ("ok", "caution", "cool_down"),
                "icon": "mdi:thermometer-alert",
            }
        ),
    ),
    (
        "heart_rate",
        "Heart rate",
        MappingProxyType(
            {
                "value_template": "{{ value_json.heart_rate_bpm }}",
                "unit_of_measurement": "bpm",
                "state_class": "measurement",
                "icon": "mdi:heart-pulse",
            }
        ),
    ),
    (
        "core_rise",
        "Estimated core temperature rise",
        MappingProxyType(
            {
                "value_template": "{{ value_json.core_delta_c }}",
                # a rise, not a temperature: no device_class "temperature", or Home Assistant
                # would convert 0.5 °C into 32.9 °F for a user with imperial units
                "unit_of_measurement": "°C",
                "state_class": "measurement",
                "icon": "mdi:thermometer-chevron-up",
                "suggested_display_precision": 2,
            }
        ),
    ),
)


def node_id(patient: str) -> str:
    """The discovery node of a patient (Home Assistant wants ``[a-zA-Z0-9_-]``): ``_`` is
    doubled and ``.`` becomes ``_d``, so two pseudonyms never share a node."""
    check_patient_id(patient, where="homeassistant")
    return "heatmon_" + patient.replace("_", "__").replace(".", "_d")


def discovery_messages(
    patient: str, *, topics: Topics, instance: str, discovery_prefix: str = "homeassistant"
) -> list[Discovery]:
    """The retained config messages that make ``patient``'s sensors appear."""
    node = node_id(patient)
    device = {
        "identifiers": [node],
        "name": f"heatmon {patient}",
        "manufacturer": "heatmon",
        "model": "heat-risk monitor (not a medical device)",
    }
    out: list[Discovery] = []
    for object_id, name, extra in _SENSORS:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "object_id": f"{node}_{object_id}",
            "state_topic": topics.patient(patient, Channel.STATE),
            "availability_topic": topics.status(instance),
            "availability_template": "{{ value_json.status }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            **extra,
        }
        out.append(
            Discovery(
                f"{discovery_prefix}/sensor/{node}/{object_id}/config",
                json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            )
        )
    return out
