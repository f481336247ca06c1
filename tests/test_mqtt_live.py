"""MQTT against a real Mosquitto: samples in through a gateway, state and alerts out,
symptoms and acknowledgements in, bad input answered on the errors topics, the ACL enforced,
TLS, and Home Assistant discovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import aiomqtt
import pytest

from monitor.model import Acknowledgement, SymptomReport, iso_utc
from monitor.mqtt import payloads
from monitor.mqtt.client import payload_bytes as payloads_bytes
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.gateway import Gateway
from tests.fixtures.mosquitto import BrokerFactory, make_tls_files
from tests.mqtt_helpers import (
    PASSWORDS,
    WAIT_S,
    Listener,
    QueueSource,
    cooling,
    options,
    ramp,
    running_monitor,
    start_broker,
    start_time,
    until,
    until_count,
)

pytestmark = pytest.mark.slow


async def test_gateway_samples_in_state_alerts_symptoms_acks(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix, homeassistant=True)
    codec = PayloadCodec()
    source = QueueSource()
    t0 = start_time()
    async with (
        running_monitor(broker, mqtt_prefix, homeassistant=True) as run,
        Listener(
            broker,
            user="anna",
            topics=[f"{mqtt_prefix}/patients/+/#", f"{mqtt_prefix}/monitors/+/status"],
            identifier="anna-phone",
        ) as anna,
        Listener(broker, user="heatmon", topics=["homeassistant/sensor/#"], identifier="ha") as ha,
        Gateway(
            source=source, options=options(broker, mqtt_prefix, "gw-a"), patients=["p1"]
        ) as gateway,
    ):
        gw_task = asyncio.create_task(gateway.run())
        for sample in ramp("p1", t0, range(300)):
            source.queue.put_nowait(sample)
        await anna.wait_for(
            lambda a: any(m.json()["level"] == "cool_down" for m in a.on("/alerts")),
            what="a cool-down alert",
        )
        alerts = [m.json() for m in anna.on("/p1/alerts")]
        for alert in alerts:
            assert codec.check("alert", alert) == []
        assert [a["level"] for a in alerts] == ["caution", "cool_down"]
        assert len({a["id"] for a in alerts}) == len(alerts)
        cool = alerts[-1]
        assert cool["requires_ack"] is True and cool["core_delta_c"] >= 0.2

        # the monitor's status is online (retained), the state is retained and current
        status = anna.on("/monitors/m1/status")[-1].json()
        assert status["status"] == "online" and codec.check("status", status) == []
        await until_count(run.sink, "samples_in", 600)
        current = run.monitor.state("p1")
        assert current is not None
        await anna.wait_for(
            lambda a: (
                bool(a.on("/p1/state"))
                and a.on("/p1/state")[-1].json()["time"] == iso_utc(current.time)
            ),
            what="the current state",
        )
        async with Listener(
            broker, user="anna", topics=[f"{mqtt_prefix}/patients/p1/state"], identifier="late"
        ) as late:
            await late.wait_for(lambda x: bool(x.messages), what="retained state")
            retained = late.messages[0]
            assert retained.retain
            state = retained.json()
            assert codec.check("state", state) == []
            assert state["level"] == "cool_down"
            assert state == payloads.state_dict(current)

        # "I feel symptoms now" from the patient's app, stored with the estimated rise
        async with aiomqtt.Client(
            broker.host, broker.port, username="app-p1", password=PASSWORDS["app-p1"]
        ) as app:
            await app.publish(
                f"{mqtt_prefix}/patients/p1/symptoms",
                payloads.encode_symptom(time=t0 + 299, note="tingling legs"),
                qos=1,
            )
        # the caregiver acknowledges the cool-down alert; an unknown id is refused
        async with aiomqtt.Client(
            broker.host, broker.port, username="anna", password=PASSWORDS["anna"]
        ) as care:
            await care.publish(
                f"{mqtt_prefix}/patients/p1/ack",
                payloads.encode_ack(event_id="nope:1", by="anna"),
                qos=1,
            )
            await care.publish(
                f"{mqtt_prefix}/patients/p1/ack",
                payloads.encode_ack(event_id=cool["id"], by="anna"),
                qos=1,
            )
        await until(
            lambda: len([r for r in run.records.records if not hasattr(r, "activity")]) >= 2,
            run.records.changed,
            what="symptom and acknowledgement",
        )
        [symptom] = [r for r in run.records.records if isinstance(r, SymptomReport)]
        assert symptom.patient == "p1" and symptom.note == "tingling legs"
        assert symptom.core_delta_c is not None and symptom.core_delta_c > 0.2
        [ack] = [r for r in run.records.records if isinstance(r, Acknowledgement)]
        assert (ack.event_id, ack.by) == (cool["id"], "anna")
        assert run.monitor.open_alerts("p1") == []
        assert run.sink.counters.get("rejected.ack") == 1

        # Home Assistant sees level, heart rate and estimated rise for each patient
        await ha.wait_for(lambda h: len(h.on("/config")) >= 3, what="discovery")
        configs = {m.topic.split("/")[-2]: m.json() for m in ha.on("/config")}
        assert set(configs) == {"level", "heart_rate", "core_rise"}
        for config in configs.values():
            assert config["state_topic"] == f"{mqtt_prefix}/patients/p1/state"
            key = config["value_template"].split("value_json.")[1].split()[0]
            assert key in state
        assert configs["core_rise"]["unit_of_measurement"] == "°C"
        assert "device_class" not in configs["core_rise"], "a rise must not be converted to °F"
        assert configs["heart_rate"]["unit_of_measurement"] == "bpm"
        assert configs["level"]["options"] == ["ok", "caution", "cool_down"]
        status_topic = f"{mqtt_prefix}/monitors/m1/status"
        assert all(c["availability_topic"] == status_topic for c in configs.values())
        assert "p1" in configs["level"]["device"]["name"]

        # cooling off: the level comes back to ok, then the recovered notice
        for sample in cooling("p1", t0, range(300, 520)):
            source.queue.put_nowait(sample)
        await anna.wait_for(lambda a: bool(a.on("/p1/recovered")), what="recovered")
        [recovered] = [m.json() for m in anna.on("/p1/recovered")]
        assert codec.check("recovered", recovered) == []
        assert (recovered["kind"], recovered["level"]) == ("recovered", "ok")
        assert [a.json()["level"] for a in anna.on("/p1/alerts")][-1] == "ok"
        await until(
            lambda: gateway.counters.get("published", 0) == 1040,
            gateway.counted,
            what="the gateway sent everything",
        )
        gw_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gw_task
        assert gateway.counters["published"] == 1040 and gateway.buffered == 0
        await until_count(run.sink, "samples_in", 1040)
        assert run.sink.counters["samples_in"] == 1040


async def test_bad_payloads_are_rejected_with_reason_counted_and_service_continues(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    topic = f"{mqtt_prefix}/patients/p1/samples"
    t = start_time()
    good = {"v": 1, "kind": "heart_rate", "value": 80, "unit": "bpm", "time": t}
    hr = {k: v for k, v in good.items() if k != "v"}
    batch = {"v": 1, "samples": [hr, {**hr, "time": t + 1, "kind": "core_temp", "value": 37.2}]}
    # one of each kind the issue names, with what the reason must say
    bad: list[tuple[bytes, str]] = [
        (b"{not json", "payload is not JSON"),
        (b"\xff\xfe\x00", "payload is not UTF-8"),
        (json.dumps({**good, "v": 7}).encode(), "schema version v=7 is not supported"),
        (json.dumps({k: v for k, v in good.items() if k != "kind"}).encode(), "'kind' is a req"),
        (json.dumps({**good, "value": "high"}).encode(), "value: 'high' is not of type 'number'"),
        (json.dumps({**good, "unit": "Hz"}).encode(), "unit: 'bpm' was expected"),
        (json.dumps(batch).encode(), "samples[1].unit: 'degC' was expected"),
        (json.dumps({**good, "note": "x" * 300_000}).encode(), "exceeds 262144 bytes"),
        (json.dumps({**good, "value": 900}).encode(), "value: 900 is greater than the maximum"),
        (json.dumps({**good, "time": time.time() + 3600}).encode(), "s in the future"),
        (json.dumps({**good, "patient": "p1/../p2"}).encode(), "patient: 'p1/../p2' does not"),
        (json.dumps({**good, "patient": "p+"}).encode(), "patient: 'p+' does not match"),
        (json.dumps({**good, "patient": "p#"}).encode(), "patient: 'p#' does not match"),
        (json.dumps({**good, "patient": "p2"}).encode(), "differs from the topic's patient"),
    ]
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Listener(
            broker,
            user="heatmon",
            topics=[f"{mqtt_prefix}/monitors/m1/errors"],
            identifier="ops",
        ) as ops,
        Listener(
            broker, user="gw-a", topics=[f"{mqtt_prefix}/patients/p1/errors"], identifier="gwl"
        ) as gw_errors,
        aiomqtt.Client(broker.host, broker.port, username="gw-a", password=PASSWORDS["gw-a"]) as gw,
    ):
        for body, _ in bad:
            await gw.publish(topic, body, qos=1)
        await gw.publish(topic, json.dumps(good).encode(), qos=1)
        await ops.wait_for(lambda o: len(o.messages) >= len(bad), what="error notices")
        errors = [m.json() for m in ops.messages]
        for (_, expected), error in zip(bad, errors, strict=True):
            assert expected in error["reason"]
            assert PayloadCodec().check("error", error) == []
        assert [e["rejected"] for e in errors] == list(range(1, len(bad) + 1))
        assert all(e["topic"] == topic and e["patient"] == "p1" for e in errors)
        # the gateway sees the reasons for its own patient
        await gw_errors.wait_for(lambda g: len(g.messages) >= len(bad), what="patient errors")
        # and the service kept running: the good sample after them was taken
        await until_count(run.sink, "samples_in", 1)
        assert run.sink.counters["rejected"] == len(bad)
        assert run.sink.counters["rejected.samples"] == len(bad)
        assert run.monitor.engine.engine("p1").session is not None

        # a patient this monitor does not watch (a gateway configured for p9 in the ACL):
        # refused with a reason, counted, never handed to the engine
        async with aiomqtt.Client(
            broker.host, broker.port, username="gw-c", password=PASSWORDS["gw-c"]
        ) as gw_c:
            await gw_c.publish(
                f"{mqtt_prefix}/patients/p9/samples", json.dumps(good).encode(), qos=1
            )
        await ops.wait_for(lambda o: len(o.messages) > len(bad), what="unknown patient")
        unknown = ops.messages[-1].json()
        assert unknown["patient"] == "p9" and unknown["channel"] == "samples"
        assert "'p9' is not one of this monitor's patients" in unknown["reason"]
        assert run.sink.counters["rejected.samples"] == len(bad) + 1
        assert run.sink.counters["samples_in"] == 1
        assert "p9" not in run.monitor.engine.patients
        assert run.monitor.counters.get("rejected_samples", 0) == 0

        # a bad symptom report from the patient's app is refused the same way
        async with aiomqtt.Client(
            broker.host, broker.port, username="app-p1", password=PASSWORDS["app-p1"]
        ) as app:
            await app.publish(
                f"{mqtt_prefix}/patients/p1/symptoms", b'{"v":1,"note":"dizzy"}', qos=1
            )
            typed = "Anna Schmidt says: " + "hot " * 200
            await app.publish(
                f"{mqtt_prefix}/patients/p1/symptoms",
                payloads.encode_symptom(time=t, note=typed),
                qos=1,
            )
        await ops.wait_for(lambda o: len(o.messages) > len(bad) + 2, what="symptom errors")
        assert "'time' is a required property" in ops.messages[-2].json()["reason"]
        assert ops.messages[-1].json()["reason"] == "note: str is longer than 500 characters"
        assert run.sink.counters["rejected.symptoms"] == 2
        assert not any(isinstance(r, SymptomReport) for r in run.records.records)
        # what the patient typed stays out of the log
        assert "rejected input #" in caplog.text
        assert "Anna Schmidt" not in caplog.text


async def test_acl_gateway_only_its_patients_caregiver_only_assigned(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    t0 = start_time()
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Listener(
            broker,
            user="anna",
            topics=[f"{mqtt_prefix}/patients/+/state", f"{mqtt_prefix}/patients/+/alerts"],
            identifier="anna",
        ) as anna,
        aiomqtt.Client(
            broker.host, broker.port, username="gw-a", password=PASSWORDS["gw-a"]
        ) as gw_a,
    ):
        # gw-a (patient p1 only) tries to publish for p2, then for p1, on one connection
        [forged, *_] = list(ramp("p2", t0, range(1)))
        [own, *_] = list(ramp("p1", t0, range(1)))
        await gw_a.publish(
            f"{mqtt_prefix}/patients/p2/samples", payloads.encode_sample(forged), qos=1
        )
        await gw_a.publish(f"{mqtt_prefix}/patients/p1/samples", payloads.encode_sample(own), qos=1)
        await until_count(run.sink, "samples_in", 1)
        assert run.monitor.engine.engine("p1").session is not None
        assert run.monitor.engine.engine("p2").session is None, "gw-a wrote for p2"
        assert run.sink.counters["samples_in"] == 1

        # the monitor publishes p2's state and alert, then p1's, on one connection: anna
        # receives p1's; had p2's been allowed it would have come first
        async with aiomqtt.Client(
            broker.host, broker.port, username="heatmon", password=PASSWORDS["heatmon"]
        ) as mon:
            for patient in ("p2", "p1"):
                await mon.publish(f"{mqtt_prefix}/patients/{patient}/alerts", b'{"v":1}', qos=1)
                await mon.publish(
                    f"{mqtt_prefix}/patients/{patient}/state", b'{"v":1}', qos=1, retain=True
                )
        await anna.wait_for(
            lambda a: bool(a.on("/p1/alerts")) and bool(a.on("/p1/state")), what="p1"
        )
        assert all("/p2/" not in m.topic for m in anna.messages)

        # asking for p2 by name gets nothing either: the retained states of both patients
        # are on the broker, anna subscribes to p2's first and receives only p1's
        async with Listener(
            broker,
            user="anna",
            topics=[f"{mqtt_prefix}/patients/p2/state", f"{mqtt_prefix}/patients/p1/state"],
            identifier="anna-late",
        ) as late:
            await late.wait_for(lambda x: bool(x.messages), what="a retained state")
            assert [m.topic for m in late.messages] == [f"{mqtt_prefix}/patients/p1/state"]
        async with Listener(
            broker, user="heatmon", topics=[f"{mqtt_prefix}/patients/p2/state"], identifier="ctl"
        ) as control:
            await control.wait_for(lambda x: bool(x.messages), what="p2's retained state")

        # nor may anna acknowledge p2's alerts: her ack for p2 is dropped by the broker, the
        # one for p1 after it (an unknown alert id) reaches the monitor and is answered
        async with aiomqtt.Client(
            broker.host, broker.port, username="anna", password=PASSWORDS["anna"]
        ) as care:
            for patient in ("p2", "p1"):
                await care.publish(
                    f"{mqtt_prefix}/patients/{patient}/ack",
                    payloads.encode_ack(event_id=f"{patient}-1:1", by="anna"),
                    qos=1,
                )
        await until_count(run.sink, "rejected.ack", 1)
        assert run.sink.counters["rejected"] == 1, "only p1's ack reached the monitor"


async def test_tls_and_passwords(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, tmp_path: object
) -> None:
    from pathlib import Path

    tls = make_tls_files(Path(str(tmp_path)) / "tls")
    broker = start_broker(mosquitto_factory, mqtt_prefix, tls=tls)
    from monitor.mqtt.client import make_client

    async with running_monitor(broker, mqtt_prefix, tls=True, ca_file=str(tls.ca)) as run:
        assert run.sink.connected.is_set()
        reader = options(broker, mqtt_prefix, "anna", tls=True, ca_file=str(tls.ca))
        async with make_client(reader, identifier="anna-tls") as client:
            await client.subscribe(f"{mqtt_prefix}/monitors/m1/status", qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(client.messages))
            assert json.loads(payloads_bytes(message.payload))["status"] == "online"
    # plain MQTT on a TLS listener, and a wrong password, are refused
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            broker.host, broker.port, username="anna", password=PASSWORDS["anna"], timeout=3
        ):
            pass
    wrong = options(broker, mqtt_prefix, "anna", tls=True, ca_file=str(tls.ca))
    wrong = wrong.model_copy(update={"password": None})
    with pytest.raises(aiomqtt.MqttError):
        async with make_client(wrong, identifier="w"):
            pass


async def test_a_gateway_never_logs_what_a_patient_or_caregiver_typed(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The monitor answers every rejection of a patient's input on that patient's errors
    topic, where the patient's gateway reads it and logs why. A symptom report whose note is
    not text (a list, as a broken app may send) is refused with the note quoted back; the
    monitor's own log leaves it out, and so must the gateway's."""
    caplog.set_level(logging.DEBUG)
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    secret = "relapse after the sauna"
    symptom = json.dumps({"v": 1, "time": time.time() - 5, "note": [secret]}).encode()
    ack = json.dumps({"v": 1, "event_id": "e", "by": ["Dr Jane Roe"]}).encode()
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Gateway(
            source=QueueSource(), options=options(broker, mqtt_prefix, "gw-a"), patients=["p1"]
        ) as gateway,
    ):
        gw_task = asyncio.create_task(gateway.run())
        async with asyncio.timeout(WAIT_S):
            await gateway.connected.wait()
            sent = 0
            # until the gateway's subscription is in place, a rejection may pass it by
            while gateway.counters.get("rejected_by_monitor", 0) < 2:
                async with aiomqtt.Client(
                    broker.host, broker.port, username="heatmon", password=PASSWORDS["heatmon"]
                ) as client:
                    await client.publish(f"{mqtt_prefix}/patients/p1/symptoms", symptom, qos=1)
                    await client.publish(f"{mqtt_prefix}/patients/p1/ack", ack, qos=1)
                sent += 2
                await until_count(run.sink, "rejected", sent)
                await asyncio.sleep(0.2)
        gw_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gw_task
    said = [r.getMessage() for r in caplog.records if "rejected input" in r.getMessage()]
    assert any("the monitor rejected input on" in m for m in said), said
    assert secret not in caplog.text and "Jane Roe" not in caplog.text


async def test_an_acknowledgement_over_mqtt_names_a_caregiver_not_the_patient(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    """``by = "patient:self"`` is how the records say the patient answered their own
    cool-down prompt (the dashboard's patient link). A caregiver's app could claim it over
    MQTT; anything but a caregiver's login is refused, naming ``by``, before any alert is
    looked up."""
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    errors = f"{mqtt_prefix}/patients/p1/errors"
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Listener(broker, user="heatmon", topics=[errors], identifier="w") as watch,
    ):
        async with aiomqtt.Client(
            broker.host, broker.port, username="anna", password=PASSWORDS["anna"]
        ) as anna:
            for by in ("patient:self", "Dr. Roe", "anna"):
                ack = payloads.encode_ack(event_id="p1:1", by=by)
                await anna.publish(f"{mqtt_prefix}/patients/p1/ack", ack, qos=1)
        await until_count(run.sink, "rejected", 3)
        await watch.wait_for(lambda w: len(w.messages) >= 3, what="three rejections")
    reasons = [m.json()["reason"] for m in watch.messages]
    assert [
        r.startswith("by: an acknowledgement over MQTT names a caregiver") for r in reasons
    ] == [
        True,
        True,
        False,
    ], reasons
    assert "no open alert" in reasons[2]
