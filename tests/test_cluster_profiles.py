"""Cluster mode: a personal threshold a person accepted on the dashboard, and a care-team
profile edit, reach the worker that judges the patient and the worker that takes the
partition over later (a restored checkpoint does not bring an older threshold back); a
malformed or out-of-range profile message is refused, counted, and the worker goes on;
only the workers' login may write the profiles bucket; symptom reports sent straight to the
cluster are limited per patient as the MQTT input limits them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from monitor.careteam.store import CareStore
from monitor.model import parse_time
from monitor.mqtt.payloads import encode_symptom
from monitor.mqtt.topics import Channel
from monitor.netutil import free_port
from monitor.profile import PatientProfile
from monitor.thresholds.learner import make_draft
from monitor.thresholds.records import StoredReport, new_id
from monitor.thresholds.store import ThresholdStore
from tests.cluster_helpers import (
    NAMES,
    PASSWORDS,
    PATIENTS,
    T0,
    Worker,
    hot_session,
    payloads,
    write_config,
)
from tests.fixtures.nats import NatsClusterFactory
from tests.passwords import seeded_hash
from tests.test_cluster import Dashboard, authorization, owners, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ADA, ADA_PW = "ada", "a long passphrase for ada"
EDITED_C = 0.45


def seed(url: str) -> str:
    """The care team (admin ada, assigned to p1; the four patients) and three symptom
    reports of p1 at +0.33–0.37 °C from earlier sessions: a pending suggestion. Its id."""
    with CareStore(url=url) as team:
        team.add_caregiver(ADA, "admin", by="setup", password_hash=seeded_hash(ADA_PW))
        for p in PATIENTS:
            team.add_patient(PatientProfile(id=p), by="setup")
        team.assign(ADA, "p1", by="setup")
    with ThresholdStore(url=url) as store:
        for k, rise in enumerate((0.33, 0.35, 0.37)):
            report = StoredReport(
                id=new_id(),
                patient="p1",
                session=f"s{k}",
                time=T0 - 86_400 * (3 - k),
                rise_c=rise,
                rise_sd_c=0.05,
                threshold_c=0.5,
                received=T0 - 86_400 * (3 - k),
            )
            store.add_report(
                report,
                suggest=lambda r, p: make_draft(r, p, profile=PatientProfile(id="p1")),
            )
        (suggestion,) = store.suggestions("p1", status="pending")
        return suggestion.id


async def heartbeat(nc: NatsClient, worker: str) -> dict[str, Any]:
    try:
        kv = await nc.jetstream().key_value(NAMES.workers)
        entry = await kv.get(worker)
    except (KeyNotFoundError, nats.errors.Error):
        return {}
    doc: dict[str, Any] = json.loads(entry.value or b"{}")
    return doc


async def counter(nc: NatsClient, worker: str, name: str) -> int:
    return int((await heartbeat(nc, worker)).get("counters", {}).get(name, 0))


async def test_accepted_thresholds_and_profile_edits_reach_the_owner_and_its_successor(
    nats_cluster_factory: NatsClusterFactory, tmp_path: Path
) -> None:
    cluster = nats_cluster_factory(authorization=authorization())
    url = f"sqlite:///{tmp_path / 'team.sqlite'}"
    suggestion_id = await asyncio.to_thread(seed, url)
    extra = f'[sinks.thresholds]\n\n[careteam]\nurl = "{url}"\npoll_s = 0.5\n'
    ports = {w: free_port() for w in ("w1", "w2")}
    workers = {
        w: Worker(
            write_config(
                tmp_path / f"{w}.toml", cluster.urls, worker=w, web_port=ports[w], extra=extra
            ),
            tmp_path / f"{w}.log",
        )
        for w in ("w1", "w2")
    }
    nc = await nats.connect(cluster.urls, user="heatmon", password=PASSWORDS["heatmon"])
    states: list[tuple[float, float]] = []  # (sample time, threshold_rise_c) as they arrive

    async def on_state(msg: Msg) -> None:
        doc = json.loads(msg.data)
        states.append((parse_time(str(doc["time"])), float(doc["threshold_rise_c"])))

    data = list(payloads(hot_session("p1", seconds=900)))
    js = nc.jetstream()
    sent = 0

    async def send(upto: int) -> None:
        nonlocal sent
        subject = NAMES.inbound("p1", Channel.SAMPLES)
        for n in range(sent, upto):
            await js.publish(subject, data[n], headers={"Nats-Msg-Id": f"b{n}"})
        sent = upto

    async def states_for(count: int) -> bool:
        return len({t for t, _ in states}) >= count - 2

    def since(batch: int) -> list[float]:
        """The thresholds of the states computed from batch ``batch`` on (10 s a batch)."""
        return [th for t, th in states if t >= T0 + 10 * batch]

    try:
        await nc.subscribe(NAMES.outbound("p1", Channel.STATE.value), cb=on_state)

        async def both_own() -> bool:
            o = await owners(nc)
            return len(o) == NAMES.partitions and set(o.values()) == {"w1", "w2"}

        await wait_for(both_own, within_s=60, what="both workers to own partitions")
        await send(20)
        await wait_for(lambda: states_for(20), within_s=60, what="states before the accept")
        assert {th for _, th in states} == {0.5}
        owner = (await owners(nc))[NAMES.partition("p1")]
        other = next(w for w in workers if w != owner)

        # ada accepts the suggestion on the dashboard of the worker that does not own p1
        async with Dashboard(ports[other], login=ADA, password=ADA_PW) as dash:
            view = await dash.get("/api/patients/p1/thresholds")
            (pending,) = [s for s in view["suggestions"] if s["status"] == "pending"]
            assert pending["id"] == suggestion_id
            accepted = float(pending["suggested_c"])
            assert accepted < 0.5
            applied = await counter(nc, owner, "profiles_applied")
            await dash.post(f"/api/patients/p1/suggestions/{suggestion_id}/accept")

        async def owner_applied() -> bool:
            return await counter(nc, owner, "profiles_applied") > applied

        await wait_for(owner_applied, within_s=30, what="the owner to apply the accept")
        await send(50)
        await wait_for(lambda: states_for(50), within_s=60, what="states after the accept")
        # the owner's next states judge against the accepted threshold
        after = since(21)
        assert len(after) >= 25 and set(after) == {accepted}, after
        assert (await owners(nc))[NAMES.partition("p1")] == owner

        # the owner checkpoints p1 with the accepted threshold in its engine ...
        ckpts = await js.key_value(NAMES.checkpoints)
        last_seq = (await js.stream_info(NAMES.in_stream)).state.last_seq

        async def checkpointed() -> bool:
            try:
                entry = await ckpts.get(NAMES.marker_key(NAMES.partition("p1")))
            except KeyNotFoundError:
                return False
            return int(json.loads(entry.value or b"{}")["seq"]) >= last_seq

        await wait_for(checkpointed, within_s=30, what="a checkpoint after the accept")
        # ... then ada edits p1's profile (no sample in between: the checkpoint stays as
        # it is), the owner applies it, and dies
        applied = await counter(nc, owner, "profiles_applied")
        async with Dashboard(ports[other], login=ADA, password=ADA_PW) as dash:
            record = await dash.get("/api/team/patients/p1")
            assert record["profile"]["threshold_rise_c"] == accepted
            await dash.post(
                "/api/team/patients/p1",
                {"version": record["version"], "profile": {"threshold_rise_c": EDITED_C}},
            )

        await wait_for(owner_applied, within_s=30, what="the owner to apply the edit")
        workers[owner].kill9()

        async def taken_over() -> bool:
            return (await owners(nc)).get(NAMES.partition("p1")) == other

        await wait_for(taken_over, within_s=60, what="the survivor to take the partition")
        await send(80)
        await wait_for(lambda: states_for(80), within_s=60, what="the survivor's states")
        survivor = since(51)
        assert len(survivor) >= 25 and set(survivor) == {EDITED_C}, survivor
        log = workers[other].log.read_text()
        assert f"partition {NAMES.partition('p1')}: 1 patients restored" in log

        # malformed and out-of-range profile messages: refused, counted, the worker goes on
        profiles = await js.key_value(NAMES.profiles)
        refused = await counter(nc, other, "profiles_refused")
        await profiles.put(NAMES.profile_key("p2"), b"{not json")
        below_floor = {
            "v": 1,
            "patient": "p3",
            "change": "threshold.accept",
            "by": "mallory",
            "at": T0,
            "suggestion": new_id(),
            "profile": PatientProfile(
                id="p3", threshold_rise_c=0.2, caution_margin_c=0.1
            ).model_dump(mode="json"),
        }
        await profiles.put(NAMES.profile_key("p3"), json.dumps(below_floor).encode())

        async def counted() -> bool:
            return await counter(nc, other, "profiles_refused") >= refused + 2

        await wait_for(counted, within_s=30, what="the refusals to be counted")
        await send(90)
        await wait_for(lambda: states_for(90), within_s=60, what="states after the refusals")
        assert set(since(81)) == {EDITED_C}
        refusals = [line for line in workers[other].output().splitlines() if "refused" in line]
        assert refusals and not any(p in line for line in refusals for p in ("p2", "p3"))

        # symptom reports straight to the cluster are limited per patient as the MQTT input
        # limits them (10 a minute by default): the rest dropped and counted
        for n in range(12):
            body = encode_symptom(time=T0 + 880 + n, note="")
            await js.publish(NAMES.inbound("p1", Channel.SYMPTOMS), body)

        async def limited() -> bool:
            return await counter(nc, other, "symptoms_limited") >= 2

        await wait_for(limited, within_s=30, what="the reports over the limit to be counted")
        assert await counter(nc, other, "symptoms") == 10
        # the workers share the care team's store, and say nothing of it
        assert await counter(nc, other, "thresholds_store_mismatch") == 0
        assert "uses another thresholds store" not in workers[other].log.read_text()

        # nobody but the workers' login may write the bucket
        errors: list[Exception] = []

        async def on_error(err: Exception) -> None:
            errors.append(err)

        carol = await nats.connect(
            cluster.urls, user="carol", password=PASSWORDS["carol"], error_cb=on_error
        )
        try:
            await carol.publish(f"$KV.{NAMES.profiles}.{NAMES.profile_key('p1')}", b"{}")
            await carol.flush()
            await asyncio.sleep(0.5)
        finally:
            await carol.close()
        assert any("permissions violation" in str(e).lower() for e in errors), errors
        entry = await profiles.get(NAMES.profile_key("p1"))
        assert json.loads(entry.value or b"{}")["profile"]["threshold_rise_c"] == EDITED_C
    finally:
        for w in workers.values():
            w.stop()
        await nc.close()
