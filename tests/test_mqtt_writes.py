"""Outgoing MQTT packets leave in few writes (``BufferedWrites``): the same bytes in the same
order as paho alone would send, a packet the socket takes only in part is finished later,
every QoS 0 publish is reported as sent, and against a real Mosquitto every message of a
burst arrives, in order."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as paho_mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.mqtt.client import BufferedWrites, TrackedPublishes, make_client
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import Listener, options, start_broker


class Socket:
    """A non-blocking socket's ``send`` that takes at most ``room`` bytes a call (then
    would block until ``room`` is raised) and records what it took."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.sent = bytearray()
        self.calls = 0

    def send(self, data: bytes) -> int:
        self.calls += 1
        if self.room <= 0:
            raise BlockingIOError
        n = min(len(data), self.room)
        self.room -= n
        self.sent += data[:n]
        return n

    def close(self) -> None:
        self.room = 0


def queued_client(socket: Socket, n: int, *, buffered: bool) -> tuple[paho_mqtt.Client, list[int]]:
    client = paho_mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t")
    published: list[int] = []
    client.on_publish = lambda _c, _u, mid, _rc, _p: published.append(mid)
    client.on_socket_register_write = lambda *_: None  # as aiomqtt: the loop writes
    client.on_socket_unregister_write = lambda *_: None
    client._sock = socket  # type: ignore[assignment]
    if buffered:
        BufferedWrites(client).install()
    for i in range(n):
        client.publish(f"heatmon/p{i % 7}/state", f"{{'i': {i}}}".encode() * (1 + i % 5), qos=0)
    return client, published


def test_one_write_carries_every_queued_packet_in_paho_s_order() -> None:
    plain_socket, buffered_socket = Socket(10**9), Socket(10**9)
    plain, _ = queued_client(plain_socket, 500, buffered=False)
    buffered, published = queued_client(buffered_socket, 500, buffered=True)
    plain.loop_write()
    buffered.loop_write()
    assert bytes(buffered_socket.sent) == bytes(plain_socket.sent)
    assert plain_socket.calls == 500
    assert buffered_socket.calls == 1
    assert len(published) == 500 and not buffered.want_write()


def test_a_write_taken_in_part_is_finished_later_and_nothing_is_reported_early() -> None:
    reference = Socket(10**9)
    queued_client(reference, 300, buffered=False)[0].loop_write()
    socket = Socket(1001)  # ends inside a packet
    client, published = queued_client(socket, 300, buffered=True)
    client.loop_write()
    assert bytes(socket.sent) == bytes(reference.sent)[:1001]
    assert 0 < len(published) < 300 and client.want_write()
    for _ in range(100):
        if not client.want_write():
            break
        socket.room = 777
        client.loop_write()
    assert bytes(socket.sent) == bytes(reference.sent)
    assert published == sorted(published) and len(published) == 300


@pytest.mark.slow
async def test_a_burst_of_states_and_alerts_arrives_whole_and_in_order(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    topic = f"{mqtt_prefix}/patients/p1/state"
    async with (
        Listener(
            broker, user="anna", topics=[f"{mqtt_prefix}/patients/p1/#"], identifier="anna"
        ) as anna,
        make_client(options(broker, mqtt_prefix, "heatmon"), identifier="burst") as client,
    ):
        paho = client._client
        for i in range(2000):  # handed over without a wait, as the sink's states
            paho.publish(topic, str(i).encode(), 0, False)
        await client.publish(f"{mqtt_prefix}/patients/p1/alerts", b"last", qos=1)
        await anna.wait_for(lambda a: bool(a.on("/alerts")), what="the alert after the burst")
        got = [m.payload for m in anna.messages if m.topic == topic]
        assert got == [str(i).encode() for i in range(2000)]


@pytest.mark.slow
async def test_tracked_publishes_answer_each_message_once_beside_aiomqtt_s_own(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    """The alert sender's publishes: every PUBACK calls back once with its message id,
    none before the broker had it, and aiomqtt's own awaited publishes on the same
    connection still complete."""
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    topic = f"{mqtt_prefix}/patients/p1/alerts"
    acked: list[int] = []
    async with (
        Listener(broker, user="anna", topics=[topic], identifier="anna") as anna,
        make_client(options(broker, mqtt_prefix, "heatmon"), identifier="tracked") as client,
    ):
        tracked = TrackedPublishes(client, acked=acked.append)
        mids = [tracked.publish(topic, str(i).encode()) for i in range(300)]
        assert None not in mids and len(set(mids)) == 300
        assert acked == [] and len(tracked) == 300 and tracked.oldest() is not None
        await client.publish(topic, b"awaited", qos=1)  # aiomqtt's on_publish still runs
        await anna.wait_for(lambda a: len(a.messages) == 301, what="all 301 messages")
        for _ in range(100):
            if len(acked) == 300:
                break
            await asyncio.sleep(0.01)
        assert sorted(acked) == sorted(m for m in mids if m is not None)
        assert len(tracked) == 0 and tracked.oldest() is None
        assert [m.payload for m in anna.messages[:300]] == [str(i).encode() for i in range(300)]
        tracked.close()
        assert client._client.on_publish != tracked._answered  # aiomqtt's callback is back


def watched_client(socket: Socket) -> tuple[paho_mqtt.Client, list[object]]:
    """A client writing through ``BufferedWrites`` whose socket watch (aiomqtt's, when a
    write would block) is recorded."""
    client = paho_mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t")
    watched: list[object] = []
    client.on_socket_register_write = lambda _c, _u, sock: watched.append(sock)
    client.on_socket_unregister_write = lambda *_: None
    client._sock = socket  # type: ignore[assignment]
    BufferedWrites(client).install()
    return client, watched


async def test_what_a_turn_queues_is_written_at_its_end_and_a_full_socket_is_watched() -> None:
    socket = Socket(10**9)
    client, watched = watched_client(socket)
    for i in range(100):
        client.publish("heatmon/p1/state", str(i).encode(), qos=0)
    assert socket.calls == 0  # nothing yet: the turn is not over
    await asyncio.sleep(0)
    assert socket.calls == 1 and not client.want_write() and watched == []
    socket.room = 0  # the socket is full: aiomqtt's watch of it takes over
    client.publish("heatmon/p1/state", b"late", qos=0)
    await asyncio.sleep(0)
    assert client.want_write() and watched == [socket]


async def test_a_broken_connection_is_not_watched_after_it_closed() -> None:
    """The broker went away: paho closes the socket; its file descriptor is not handed to
    the event loop afterwards (that would log an error about a closed descriptor)."""

    class Broken(Socket):
        def send(self, data: bytes) -> int:
            raise BrokenPipeError

    socket = Broken(0)
    client, watched = watched_client(socket)
    client.publish("heatmon/p1/state", b"x", qos=1)
    await asyncio.sleep(0)
    assert client._sock is None and watched == []
