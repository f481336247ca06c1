"""Cluster mode when parts fail or misbehave: a NATS node killed and restarted, a gateway
publishing for a patient that is not its own, and what ``heatmon cluster status`` says."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import nats
import pytest
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError

from monitor.cluster.config import ClusterConfig
from monitor.cluster.partition import consumer_name
from monitor.cluster.topology import ensure
from monitor.engine import MonitorEngine
from monitor.mqtt.payloads import encode_batch, sample_dict
from monitor.mqtt.topics import Channel
from monitor.profile import PatientProfile
from tests.cluster_helpers import NAMES, PASSWORDS, Worker, hot_session, payloads, write_config
from tests.fixtures.nats import NatsClusterFactory
from tests.test_cluster import authorization, owners, wait_for

pytestmark = pytest.mark.slow


async def _stream_count(js: nats.js.JetStreamContext, stream: str, subject: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            info = await js.stream_info(stream, subjects_filter=subject)
            return sum((info.state.subjects or {}).values())
        except (NatsError, NatsTimeout):  # a restarted node is catching up: ask again
            assert time.monotonic() < deadline, f"{stream} never answered"
            await asyncio.sleep(0.2)


async def _acknowledged(js: nats.js.JetStreamContext, seq: int) -> bool:
    """p1's partition's worker acknowledged the inbound stream up to ``seq``: it does so only
    once the outputs of those messages are stored."""
    durable = consumer_name(NAMES.root, NAMES.partition("p1"))
    try:
        info = await js.consumer_info(NAMES.in_stream, durable)
    except (NatsError, NatsTimeout):
        return False  # a node is catching up, or the worker is recreating its consumer
    return info.ack_floor is not None and info.ack_floor.stream_seq >= seq


async def test_a_gateway_cannot_publish_for_another_patient(
    nats_cluster_factory: NatsClusterFactory,
) -> None:
    cluster = nats_cluster_factory(authorization=authorization())
    nc = await nats.connect(cluster.urls, user="heatmon", password=PASSWORDS["heatmon"])
    try:
        js = nc.jetstream()
        await ensure(js, ClusterConfig(servers=tuple(cluster.urls), partitions=NAMES.partitions))
        batch = encode_batch([sample_dict(s) for s in hot_session("p1", seconds=10)[0]])
        # over MQTT (as a gateway connects), to another node than the monitor's
        node = cluster.nodes[1]
        async with aiomqtt.Client(
            "127.0.0.1",
            node.mqtt_port,
            username="gw1",
            password=PASSWORDS["gw1"],
            identifier="gw1-test",
        ) as mqtt:
            await mqtt.publish("heatmon/v1/patients/p1/samples", batch, qos=1)
            await mqtt.publish("heatmon/v1/patients/p2/samples", batch, qos=1)
        # natively, with the same login
        errors: list[Exception] = []

        async def on_error(err: Exception) -> None:
            errors.append(err)

        gw = await nats.connect(
            cluster.urls, user="gw1", password=PASSWORDS["gw1"], error_cb=on_error
        )
        await gw.publish(NAMES.inbound("p2", Channel.SAMPLES), batch)
        await gw.publish(NAMES.inbound("p1", Channel.SAMPLES), batch)
        await gw.flush()
        await asyncio.sleep(0.5)
        await gw.close()

        async def p1_arrived() -> bool:
            return await _stream_count(js, NAMES.in_stream, f"{NAMES.root}.in.*.p1.samples") == 2

        await wait_for(p1_arrived, within_s=20, what="the gateway's own samples")
        assert await _stream_count(js, NAMES.in_stream, f"{NAMES.root}.in.*.p2.>") == 0
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await nc.close()


async def test_a_nats_node_killed_and_restarted_loses_no_sample(
    nats_cluster_factory: NatsClusterFactory, tmp_path: Path
) -> None:
    cluster = nats_cluster_factory(authorization=authorization())
    config = write_config(tmp_path / "w1.toml", cluster.urls, worker="w1")
    worker = Worker(config, tmp_path / "w1.log")
    batches = hot_session("p1", seconds=1500)
    data = list(payloads(batches))
    nc = await nats.connect(
        cluster.urls,
        user="heatmon",
        password=PASSWORDS["heatmon"],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )
    try:
        js = nc.jetstream(timeout=2.0)

        async def owned() -> bool:
            return NAMES.partition("p1") in await owners(nc)

        await wait_for(owned, within_s=60, what="the worker to own the partitions")
        victim = cluster.nodes[0]
        for n, payload in enumerate(data):
            if n == len(data) // 3:
                victim.kill()
            if n == 2 * len(data) // 3:
                cluster.start_node(victim)
            deadline = time.monotonic() + 60
            while True:  # a gateway's outbox: resend until stored (the id makes it once)
                try:
                    await js.publish(
                        NAMES.inbound("p1", Channel.SAMPLES),
                        payload,
                        headers={"Nats-Msg-Id": f"b{n}"},
                    )
                    break
                except (NatsError, NatsTimeout, TimeoutError):
                    assert time.monotonic() < deadline, f"batch {n} never stored"
                    await asyncio.sleep(0.2)
        engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
        expected = sum(len(engine.ingest(s).states) for b in batches for s in b)
        await wait_for(
            lambda: _acknowledged(js, len(data)), within_s=90, what="the worker to take all"
        )
        assert await _stream_count(js, NAMES.in_stream, f"{NAMES.root}.in.>") == len(data)
        got = await _stream_count(js, NAMES.out_stream, f"{NAMES.root}.out.p1.state")
        if got != expected:  # say what the worker's engines flagged (its last heartbeat)
            beat = await (await js.key_value(NAMES.workers)).get("w1")
            pytest.fail(f"{got} of {expected} states; heartbeat {beat.value!r}\n{worker.output()}")

        seen: dict[str, Any] = {}

        async def status_shows_the_owner() -> bool:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "monitor.cli", "cluster", "status", "--json", "--config", str(config)),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "HEATMON_CLUSTER_PASSWORD": PASSWORDS["heatmon"]},
            )
            async with asyncio.timeout(60):
                stdout, stderr = await proc.communicate()
            if proc.returncode != 0:  # says why (e.g. a server timed out): the operator retries
                assert b"cluster status:" in stderr, stderr
                return False
            doc = seen["status"] = json.loads(stdout)
            row = doc["partitions"][NAMES.partition("p1")]
            workers = [w["worker"] for w in doc["workers"]]
            return bool(row["owner"] == "w1" and row["lag"] == 0 and workers == ["w1"])

        # what an operator sees (the restarted node may still be catching up: ask again)
        await wait_for(status_shows_the_owner, within_s=60, what="status: w1 owns p1, no lag")
        # and that no sample was flagged and left out (the loss this test once caught)
        assert "future" not in seen["status"]["workers"][0]["flags"], seen["status"]["workers"]
    finally:
        worker.stop()
        await nc.close()


async def test_a_takeover_replays_what_came_after_the_checkpoint_without_losing_samples(
    nats_cluster_factory: NatsClusterFactory, tmp_path: Path
) -> None:
    """The checkpointed engine remembers the old owner's clock: its last ticks saw one batch
    each (10 s of samples a tick), which allows samples up to ~50 s ahead of that clock. The
    new owner replays minutes of samples at once, before its own first tick; later, live,
    it gets a burst of minutes of samples after one batch a tick (a gateway's backlog
    after a stall). Each sample must be taken (none flagged ``future`` and dropped), so it
    sends every state the uninterrupted run sends."""
    cluster = nats_cluster_factory(authorization=authorization())
    w1 = Worker(write_config(tmp_path / "w1.toml", cluster.urls, worker="w1"), tmp_path / "w1.log")
    w2: Worker | None = None
    batches = hot_session("p1", seconds=1500)
    data = list(payloads(batches))
    partition = NAMES.partition("p1")
    nc = await nats.connect(cluster.urls, user="heatmon", password=PASSWORDS["heatmon"])
    try:
        js = nc.jetstream(timeout=5.0)
        subject = NAMES.inbound("p1", Channel.SAMPLES)

        async def publish(first: int, last: int, *, pause_s: float = 0.0) -> None:
            for n in range(first, last):
                await js.publish(subject, data[n], headers={"Nats-Msg-Id": f"b{n}"})
                await asyncio.sleep(pause_s)

        async def owned_by(worker: str) -> bool:
            return (await owners(nc)).get(partition) == worker

        async def checkpointed(seq: int) -> bool:
            try:
                ckpts = await js.key_value(NAMES.checkpoints)
                entry = await ckpts.get(NAMES.marker_key(partition))
            except KeyNotFoundError:
                return False
            return int(json.loads(entry.value or b"{}")["seq"]) >= seq

        await wait_for(lambda: owned_by("w1"), within_s=60, what="w1 to own the partitions")
        await publish(0, 40)
        await asyncio.sleep(1.5)
        await publish(40, 42, pause_s=1.2)  # one batch a tick: the clock's step is 10 s
        await wait_for(lambda: checkpointed(42), within_s=30, what="a checkpoint of 42 batches")
        w1.kill9()
        await publish(42, 120)  # 780 s of samples while no one owns them
        w2 = Worker(
            write_config(tmp_path / "w2.toml", cluster.urls, worker="w2"), tmp_path / "w2.log"
        )
        await wait_for(lambda: owned_by("w2"), within_s=60, what="w2 to take the partition")
        await wait_for(lambda: _acknowledged(js, 120), within_s=60, what="w2 to replay 120 batches")
        await publish(120, 122, pause_s=1.2)  # one batch a tick again, then a burst
        await publish(122, len(data))
        await wait_for(lambda: _acknowledged(js, len(data)), within_s=60, what="every batch")
        engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
        expected = sum(len(engine.ingest(s).states) for b in batches for s in b)
        got = await _stream_count(js, NAMES.out_stream, f"{NAMES.root}.out.p1.state")
        assert got == expected, w2.output()
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()
        await nc.close()
