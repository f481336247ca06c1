"""Helpers for the MQTT tests: a running Monitor with the MQTT sink, a listening client,
a source fed from a queue, and a warm-up-then-heat sample ramp for one patient."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple, Self

import aiomqtt

from monitor.engine import MonitorEngine
from monitor.model import Acknowledgement, Sample, SampleKind, SessionRecord, SymptomReport
from monitor.mqtt.acl import render_acl
from monitor.mqtt.client import payload_bytes
from monitor.mqtt.localbroker import MosquittoBroker, TlsFiles
from monitor.mqtt.options import AclOptions, MqttOptions
from monitor.mqtt.sink import MqttSink
from monitor.plugins import Emit, PluginContext, Sink, Source
from monitor.profile import PatientProfile
from monitor.service import Monitor

PASSWORDS: Mapping[str, str] = {
    "heatmon": "pw-monitor",
    "gw-a": "pw-gateway-a",
    "gw-b": "pw-gateway-b",
    "gw-c": "pw-gateway-c",
    "anna": "pw-anna",
    "app-p1": "pw-app",
}
ACL = AclOptions(
    gateways={"gw-a": ["p1"], "gw-b": ["p2"], "gw-c": ["p9"]},
    caregivers={"anna": ["p1"]},
    apps={"app-p1": ["p1"]},
)
WAIT_S = 15.0


def start_broker(
    factory: Callable[..., MosquittoBroker],
    prefix: str,
    *,
    homeassistant: bool = False,
    tls: TlsFiles | None = None,
) -> MosquittoBroker:
    """A Mosquitto with the test logins and the ACL ``heatmon mqtt acl`` makes for them."""
    acl = render_acl(MqttOptions(topic_prefix=prefix, acl=ACL, homeassistant=homeassistant))
    return factory(users=PASSWORDS, acl=acl, tls=tls)


def write_config(
    path: Path,
    broker: MosquittoBroker,
    prefix: str,
    *,
    user: str,
    instance: str,
    data_dir: Path,
    extra: str = "",
) -> Path:
    """A heatmon TOML file for patient p1 with ``[sinks.mqtt]`` pointing at ``broker`` (the
    password comes from ``HEATMON_MQTT_PASSWORD``, as in production); ``extra`` is
    inserted before ``[sinks.mqtt]``."""
    path.write_text(
        f"""
[monitor]
instance = "{instance}"
data_dir = "{data_dir}"

[[patients]]
id = "p1"
{extra}
[sinks.mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{user}"
topic_prefix = "{prefix}"
reconnect_base_s = 0.1
reconnect_max_s = 0.5
""",
        encoding="utf-8",
    )
    return path


def options(broker: MosquittoBroker, prefix: str, user: str, **extra: Any) -> MqttOptions:
    return MqttOptions.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "username": user,
            "password": PASSWORDS[user],
            "topic_prefix": prefix,
            "reconnect_base_s": 0.1,
            "reconnect_max_s": 0.5,
            "acl": ACL,
            **extra,
        }
    )


class RecordingSink(Sink):
    """Keeps the records the monitor fans out (symptom reports, acknowledgements)."""

    name = "recording"

    def __init__(self) -> None:
        self.records: list[SymptomReport | Acknowledgement | SessionRecord] = []
        self.changed = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        self.records.append(record)
        self.changed.set()


class Running(NamedTuple):
    monitor: Monitor
    sink: MqttSink
    records: RecordingSink


@asynccontextmanager
async def running_monitor(
    broker: MosquittoBroker,
    prefix: str,
    *,
    patients: Sequence[str] = ("p1", "p2"),
    sources: Sequence[Source] = (),
    outbox_path: str = ":memory:",
    **extra: Any,
) -> AsyncIterator[Running]:
    """The real Monitor (engine + MQTT sink) against ``broker``; no ticker noise."""
    opts = options(broker, prefix, "heatmon", **extra)
    context = PluginContext(config=None, instance="m1")
    sink = MqttSink(
        options=opts,
        instance="m1",
        context=context,
        known_patients=tuple(patients),
        outbox_path=outbox_path,
    )
    records = RecordingSink()
    engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in patients})
    monitor = Monitor(engine=engine, sources=sources, sinks=[sink, records], tick_s=3600.0)
    context.monitor = monitor
    async with monitor:
        async with asyncio.timeout(WAIT_S):
            await sink.connected.wait()
        yield Running(monitor, sink, records)


class Received(NamedTuple):
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """A client that subscribes and records every message; with ``persistent`` it keeps a
    broker session and reconnects after an outage, like a caregiver's app."""

    def __init__(
        self,
        broker: MosquittoBroker,
        *,
        user: str,
        topics: Sequence[str],
        identifier: str,
        persistent: bool = False,
    ) -> None:
        self._broker = broker
        self._user = user
        self._topics = list(topics)
        self._identifier = identifier
        self._persistent = persistent
        self.messages: list[Received] = []
        self.granted: list[int] = []
        self.subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(WAIT_S):
            await self.subscribed.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            client = aiomqtt.Client(
                self._broker.host,
                self._broker.port,
                username=self._user,
                password=PASSWORDS[self._user],
                identifier=self._identifier,
                clean_session=not self._persistent,
            )
            try:
                async with client:
                    granted = await client.subscribe([(t, 1) for t in self._topics])
                    self.granted = [g if isinstance(g, int) else g.value for g in granted]
                    self.subscribed.set()
                    async for m in client.messages:
                        self.messages.append(
                            Received(m.topic.value, payload_bytes(m.payload), bool(m.retain))
                        )
                        self._changed.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                if not self._persistent:
                    raise
                await asyncio.sleep(0.1)

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]

    async def wait_for(self, predicate: Callable[[Self], bool], *, what: str = "") -> None:
        try:
            async with asyncio.timeout(WAIT_S):
                while not predicate(self):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            topics = sorted({m.topic for m in self.messages})
            raise AssertionError(f"timed out waiting for {what}; got topics {topics}") from None


class QueueSource(Source):
    """A source fed by the test (stands in for a wearable next to the gateway)."""

    name = "queue"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Sample] = asyncio.Queue()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    async def run(self, emit: Emit) -> None:
        while True:
            await emit(await self.queue.get())


def ramp(patient: str, t0: float, seconds: range) -> Iterator[Sample]:
    """Rest for 150 s, then hard work with a measured core temperature rising 0.02 °C/s:
    the engine says caution at about 205 s and cool down at about 215 s (from start_time())."""
    for i in seconds:
        t = t0 + i
        core = 37.0 if i < 150 else 37.0 + min(0.9, (i - 150) * 0.02)
        yield Sample(patient, SampleKind.HEART_RATE, 70.0 if i < 150 else 150.0, t, "hr", "test")
        yield Sample(patient, SampleKind.CORE_TEMP, core, t, "core", "test")


def cooling(patient: str, t0: float, seconds: range) -> Iterator[Sample]:
    """After :func:`ramp`'s 300 s: rest, core temperature falling 0.02 °C/s from 37.9 °C back
    to 37.0 °C: the engine says ok at about 500 s and recovered at about 510 s."""
    for i in seconds:
        t = t0 + i
        core = max(37.0, 37.9 - (i - 300) * 0.02)
        yield Sample(patient, SampleKind.HEART_RATE, 75.0, t, "hr", "test")
        yield Sample(patient, SampleKind.CORE_TEMP, core, t, "core", "test")


def start_time() -> float:
    """Sample clock that starts in the past, so no sample lies in the future; 5 s past a
    multiple of 10 s, so the engine's 10-s windows cut :func:`ramp` the same way in every run:
    caution at 205 s and cool_down at 215 s. (At other offsets a window could end exactly at
    200 s, where the broker tests stop the broker, or take the level from ok straight to
    cool_down.)"""
    return float(int(time.time()) // 10 * 10 + 5 - 600)


async def until(predicate: Callable[[], bool], changed: asyncio.Event, *, what: str) -> None:
    """Wait (at most ``WAIT_S``) until ``predicate()`` holds, re-checking when ``changed``
    is set."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def until_count(sink: MqttSink, name: str, n: int) -> None:
    await until(lambda: sink.counters.get(name, 0) >= n, sink.counted, what=f"{name} >= {n}")


class TcpProxy:
    """A TCP forwarder between a client and the broker, to drop the network under a client.

    ``blackhole()`` models a network that is gone: bytes in either direction are dropped and
    the connections stay open (no FIN, no RST); new connections are refused (no listener).
    ``restore()`` brings the network back: the connections that lived through the outage are
    reset (the broker has forgotten them), new ones are forwarded again on the same port.
    """

    def __init__(self, *, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.blackholed = False
        self.host = "127.0.0.1"
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError):
                await task

    def blackhole(self) -> None:
        self.blackholed = True
        if self._server is not None:
            self._server.close()  # stops listening; the open connections go on
            self._server = None

    async def restore(self) -> None:
        self._reset_all()
        self.blackholed = False
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if self.blackholed:
                    continue  # the packet is lost
                dst.write(data)
                await dst.drain()
        if not self.blackholed:
            dst.transport.abort()
