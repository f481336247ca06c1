"""Every exception heatmon raises on purpose derives from :class:`HeatmonError`."""

from __future__ import annotations


class HeatmonError(Exception):
    """Base class of all heatmon errors."""


class ConfigError(HeatmonError):
    """The configuration is invalid; the message names the key and what is wrong."""


class InputError(HeatmonError):
    """One piece of input (a CSV row, an MQTT payload, a BLE notification) was rejected.

    ``where`` says where it came from (``"input.csv:17"``, a topic, a device), so a
    person can find it; the service counts the rejection and keeps running.
    """

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where


class ParseError(InputError):
    """A binary payload (GATT characteristic value) could not be decoded."""


class SinkError(HeatmonError):
    """An output failed; ``action`` sorts it as Telegraf does: drop, throttle or retry."""

    def __init__(self, message: str, *, action: str) -> None:
        super().__init__(message)
        self.action = action


class SourceError(HeatmonError):
    """A source of samples failed (a wearable, a broker, a file)."""
