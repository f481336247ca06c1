"""One place that turns :class:`MqttOptions` into an ``aiomqtt.Client`` (auth, TLS, will)."""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from paho.mqtt.enums import MQTTErrorCode

from monitor.mqtt.options import MqttOptions

PENDING_CALLS_WARN = 1000
"""aiomqtt warns above this many unanswered calls; alerts and batches are sent in parallel."""
PUBLISH_TIMEOUT_S = 10.0
"""Longest wait for a PUBACK before the connection is treated as broken."""
OUT_IN_FLIGHT = 1000
"""QoS 1 messages sent to the broker and awaiting their PUBACK at once (paho's default is
20: a burst of alerts then waited a broker round trip per 20)."""
READ_CHUNK = 64 * 1024
"""Bytes taken from the socket at once (paho asks for a packet a few bytes at a time)."""
_PUBACK = struct.Struct("!BBH")


def make_client(
    options: MqttOptions,
    *,
    identifier: str,
    will: aiomqtt.Will | None = None,
    manual_ack: bool = False,
) -> aiomqtt.Client:
    """A client with a persistent session (``clean_session=False``): the broker keeps our
    subscriptions and queues QoS 1 messages for us while we are away.

    With ``manual_ack`` a received QoS 1 message is not PUBACKed on receipt (paho's
    default) but when the caller calls ``client._client.ack(mid, qos)``: the broker keeps
    it, and delivers it again after a reconnect, until then (aiomqtt 2.5 does not expose
    this; paho's ``manual_ack_set``/``ack`` are public)."""
    tls_params: aiomqtt.TLSParameters | None = None
    if options.tls:
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(options.ca_file) if options.ca_file else None,
            certfile=str(options.cert_file) if options.cert_file else None,
            keyfile=str(options.key_file) if options.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    password = options.password.get_secret_value() if options.password is not None else None
    client = aiomqtt.Client(
        options.host,
        options.port,
        username=options.username,
        password=password,
        identifier=identifier,
        clean_session=False,
        will=will,
        keepalive=options.keepalive_s,
        tls_params=tls_params,
        timeout=PUBLISH_TIMEOUT_S,
        max_inflight_messages=OUT_IN_FLIGHT,
    )
    client.pending_calls_threshold = PENDING_CALLS_WARN
    BufferedReads(client._client).install()
    BufferedWrites(client._client).install()
    if manual_ack:
        client._client.manual_ack_set(True)  # aiomqtt 2.5 has no manual_ack option
    return client


async def run_until_one_fails(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` (a connection's reader and writer) until one of them ends or fails;
    cancel the others and raise the failure as is.

    Not an ``asyncio.TaskGroup``: on Python 3.11 a TaskGroup whose child fails after the
    group's body has finished cancels the parent task and never takes that back, so the
    reconnect loop could not tell it from a real stop (see :func:`check_cancelled`)."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


def check_cancelled() -> None:
    """Raise ``CancelledError`` if the current task has been asked to stop.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can swallow a
    cancellation that arrives just as the awaited PUBACK does (CPython gh-86296): the call
    returns normally and a reconnect loop would run on forever. Call this after every await
    on the client in a loop that must stop when cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def payload_bytes(payload: object) -> bytes:
    """An incoming message's payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


class BufferedReads:
    """paho reads each packet with a ``recv`` for its first byte, one per length byte and
    one for the rest, and stops after one packet per readable event: under load that is
    four system calls and a trip through the event loop per message. Installed on a paho
    client, this takes what the socket holds in one ``recv`` (at most ``READ_CHUNK``),
    serves paho's reads from it, and lets paho read on while bytes are left over (the
    socket would not wake the loop for them). Nothing else changes: the same bytes, in
    the same order, reach the same parser."""

    __slots__ = ("_buf", "_loop_read", "_paho", "_pos", "_recv", "_sock")

    def __init__(self, paho: paho_mqtt.Client) -> None:
        self._paho = paho
        self._recv = paho._sock_recv
        self._loop_read = paho.loop_read
        self._buf = b""
        self._pos = 0
        self._sock: object = None

    def install(self) -> None:
        self._paho._sock_recv = self.recv  # type: ignore[method-assign]
        self._paho.loop_read = self.loop_read  # type: ignore[method-assign]

    def recv(self, bufsize: int) -> bytes:
        if self._paho._sock is not self._sock:  # a new connection: nothing left is its
            self._sock = self._paho._sock
            self._buf, self._pos = b"", 0
        if self._pos >= len(self._buf):
            data = self._recv(READ_CHUNK)  # BlockingIOError when there is nothing
            if not data:
                return data  # the connection closed
            self._buf, self._pos = data, 0
        out = self._buf[self._pos : self._pos + bufsize]
        self._pos += len(out)
        return out

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = self._loop_read(max_packets)
        while (
            rc == paho_mqtt.MQTT_ERR_SUCCESS
            and self._pos < len(self._buf)
            and self._paho._sock is not None
            and self._paho._sock is self._sock
        ):
            rc = self._loop_read(max_packets)
        return rc


class BufferedWrites:
    """paho sends each queued packet with a ``send`` of its own, and aiomqtt has the event
    loop watch the socket (a wake-up through the loop's self-pipe and two ``epoll_ctl``)
    each time something is queued: a turn that publishes a thousand states or PUBACKs
    costs thousands of system calls, and on loopback each ``send`` also runs the
    receiving side of the stack. Installed on a paho client, this

    - writes at the end of the event loop's turn in which something was queued (the
      socket is nearly always writable), and falls back to aiomqtt's watch of the socket
      only when it is not (or when paho queues from its connect thread);
    - sends every packet queued at that moment in one ``send``, then lets paho's own loop
      walk the packets as always, serving its ``send`` calls from the bytes already on the
      wire: paho's bookkeeping (a packet written in part, ``on_publish``, a DISCONNECT) is
      untouched, and what the one ``send`` did not take paho sends itself.

    Only the number and timing of the writes change: the same bytes leave in the same
    order."""

    __slots__ = ("_credit", "_fallback", "_packet_write", "_paho", "_scheduled", "_send")

    def __init__(self, paho: paho_mqtt.Client) -> None:
        self._paho = paho
        self._send = paho._sock_send
        self._packet_write = paho._packet_write
        self._fallback = paho.on_socket_register_write
        self._credit = 0
        self._scheduled = False

    def install(self) -> None:
        self._paho._sock_send = self.send  # type: ignore[method-assign]
        self._paho._packet_write = self.packet_write  # type: ignore[method-assign]
        if self._fallback is not None:
            self._paho.on_socket_register_write = self.register_write

    def register_write(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        """paho has something to write (and was not writing): write at the end of this
        turn of the event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # paho's connect runs in an executor thread
            self._watch(sock)
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._write_now, sock)

    def _watch(self, sock: Any) -> None:
        """Hand the socket to aiomqtt's watch (it writes when the socket is writable)."""
        if self._fallback is not None:
            self._fallback(self._paho, self._paho._userdata, sock)

    def _write_now(self, sock: Any) -> None:
        self._scheduled = False
        paho = self._paho
        if paho._sock is not sock or sock is None:
            return  # that connection is gone (a new one registers anew)
        try:
            paho.loop_write()
        except Exception:  # a broken socket: let aiomqtt's writer meet it and disconnect
            pending = True
        else:
            pending = paho.want_write()
        if pending and paho._sock is sock:  # would block: watch the socket
            self._watch(sock)

    def send(self, buf: bytes | bytearray) -> int:
        if self._credit > 0:  # already sent by packet_write's one send
            n = min(len(buf), self._credit)
            self._credit -= n
            return n
        return self._send(buf)

    def packet_write(self) -> MQTTErrorCode:
        pending = self._paho._out_packet
        if len(pending) > 1 and self._paho._sock is not None:
            data = b"".join(p["packet"][p["pos"] :] for p in pending)
            try:
                self._credit = self._send(data)
            except OSError:  # would block, or broken: paho's own loop meets it again
                self._credit = 0
        try:
            return self._packet_write()
        finally:
            self._credit = 0  # (all of it is used: paho walks every packet it was given)


def ack_all(client: aiomqtt.Client, messages: Sequence[tuple[int, int]]) -> None:
    """Acknowledge received messages ``(mid, qos)`` of a client made with ``manual_ack``:
    the PUBACKs of the QoS 1 ones leave in one write, not one write each."""
    paho = client._client  # aiomqtt 2.5 has no ack(); paho's is public
    pubacks = b"".join(_PUBACK.pack(paho_mqtt.PUBACK, 2, mid) for mid, qos in messages if qos == 1)
    if pubacks:
        paho._packet_queue(paho_mqtt.PUBACK, pubacks, 0, 1)
    for mid, qos in messages:
        if qos == 2:
            paho.ack(mid, qos)


class TrackedPublishes:
    """QoS 1 publishes answered by a callback instead of a task and a future each.

    ``aiomqtt.Client.publish`` is a coroutine: a caller that must not wait for each PUBACK
    (the alert sender, a burst of a thousand) needs a task per message, and each costs an
    ``asyncio.Event``, a ``wait_for`` and a few turns of the event loop. Installed on one
    connection, this hands the message to paho at once and calls ``acked(mid)`` when its
    PUBACK comes (paho's ``on_publish``, which aiomqtt keeps getting for its own
    publishes). Only the bookkeeping changes: the same packets, in the same order. The
    caller watches for answers that do not come (:meth:`oldest`)."""

    __slots__ = ("_acked", "_mine", "_on_publish", "_paho")

    def __init__(self, client: aiomqtt.Client, *, acked: Callable[[int], None]) -> None:
        self._paho = client._client  # aiomqtt 2.5 takes no callback; paho's is public
        self._acked = acked
        self._mine: dict[int, float] = {}
        """Message ids published here and not yet answered, with when they were sent."""
        self._on_publish = self._paho.on_publish
        self._paho.on_publish = self._answered

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Send (queue with paho) and return the message id whose ``acked`` call will come,
        or ``None`` if there is nothing to wait for (QoS 0). Raises ``aiomqtt.MqttError``
        if paho refuses it (the connection is gone)."""
        info = self._paho.publish(topic, payload, qos, retain)
        if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if qos == 0 or info.is_published():
            return None
        self._mine[info.mid] = time.monotonic()
        return info.mid

    def oldest(self) -> float | None:
        """When the oldest message still waiting for its PUBACK was sent (``monotonic``)."""
        return next(iter(self._mine.values()), None)

    def __len__(self) -> int:
        return len(self._mine)

    def close(self) -> None:
        """Give ``on_publish`` back to aiomqtt (the connection is over)."""
        if self._paho.on_publish == self._answered:
            self._paho.on_publish = self._on_publish
        self._mine.clear()

    def _answered(self, client: paho_mqtt.Client, userdata: Any, mid: int, *rest: Any) -> None:
        if self._mine.pop(mid, None) is not None:
            self._acked(mid)
        elif self._on_publish is not None:
            self._on_publish(client, userdata, mid, *rest)
