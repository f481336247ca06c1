"""The MQTT input as what it is: a source. Gateway samples, symptom reports and caregivers'
acknowledgements come in through :class:`MqttInput`, which reads the connection the
``mqtt`` sink keeps (one connection, one client id, so one session at the broker) and hands
each message to the :class:`~monitor.service.Monitor` through
:class:`~monitor.mqtt.inbound.Inbound` (bounded before use, acknowledged to the broker only
once safely kept). The sink publishes; this source reads: data flows one way.

The ``mqtt`` sink makes its input source (it owns the connection and the topics) and adds
it to the monitor when it starts (``[sinks.mqtt] subscribe_inputs = true``, the default);
there is nothing to configure under ``[sources]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol, Self

import aiomqtt

from monitor.errors import ConfigError
from monitor.mqtt.inbound import Inbound
from monitor.plugins import Emit, PluginContext, Source

log = logging.getLogger(__name__)


class Connection(Protocol):
    """What the input needs of the connection's owner (the ``mqtt`` sink)."""

    async def next_connection(self, previous: aiomqtt.Client | None) -> aiomqtt.Client: ...

    def connection_lost(self, client: aiomqtt.Client) -> None: ...


class MqttInput(Source):
    """Reads every connection of the ``mqtt`` sink until it ends, then waits for the next."""

    name = "mqtt-input"

    def __init__(self, *, inbound: Inbound, connection: Connection) -> None:
        self._inbound = inbound
        self._connection = connection

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        raise ConfigError(
            "the MQTT input comes with [sinks.mqtt] (subscribe_inputs = true), "
            "not from a [sources] section"
        )

    async def run(self, emit: Emit) -> None:
        """Never returns: one connection after another (what a message brings goes to the
        monitor's batch and record entry points, which ``emit`` does not offer)."""
        client: aiomqtt.Client | None = None
        while True:
            client = await self._connection.next_connection(client)
            try:
                await self._inbound.read(client)
            except aiomqtt.MqttError as err:
                log.debug("mqtt input: connection ended (%s)", type(err).__name__)
            except asyncio.CancelledError:
                raise  # the monitor stops: the sink closes the connection itself
            except Exception:
                self._connection.connection_lost(client)  # the sink reconnects
                raise  # the supervisor restarts this source
            self._connection.connection_lost(client)
