"""MQTT: live state and alerts out, gateway samples, symptoms and acknowledgements in.

Topics are in :mod:`monitor.mqtt.topics`, payloads (JSON, with a schema version ``"v"``) in
:mod:`monitor.mqtt.payloads` and the JSON Schemas in ``monitor/mqtt/schemas/``. The service
side is :class:`monitor.mqtt.sink.MqttSink` (sink "mqtt"); the patient side is
:class:`monitor.mqtt.gateway.Gateway` (``heatmon gateway``).
"""
