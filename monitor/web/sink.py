"""The ``web`` sink: the live dashboard as a plugin of the service.

It keeps the board (latest state and 30 minutes of compact history per patient) and runs
the dashboard's HTTP server for its lifetime. Configure it with an empty ``[sinks.web]``
block (options there override ``[web]``'s ``host`` and ``port``); users, assignments and
tokens live in ``[web]`` (see :mod:`monitor.web.config`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Self

from aiohttp import web

from monitor.careteam.config import careteam_config, store_url
from monitor.careteam.store import CareStore
from monitor.errors import ConfigError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import MonitorControl, PluginContext, Sink
from monitor.web.accesslog import RedactingAccessLogger, server_logger
from monitor.web.app import WebState, build_app
from monitor.web.auth import PatientTokens
from monitor.web.board import Board
from monitor.web.config import WebConfig, parse_web_config
from monitor.web.teamsync import TeamSync

log = logging.getLogger(__name__)

SINK_OPTIONS = frozenset({"host", "port"})
MAX_LINE_BYTES = 8190
"""Longest request line (and so URL) the server reads; longer ones get 414 from aiohttp."""
MAX_FIELD_BYTES = 8190
"""Longest header the server reads; longer ones get 431 from aiohttp."""


class WebSink(Sink):
    """Feeds the live dashboard and serves it. ``submit_*`` only update memory and queue
    frames for open streams: they never block and never raise."""

    name = "web"

    def __init__(
        self,
        *,
        config: WebConfig,
        control: MonitorControl | None = None,
        display_names: Mapping[str, str | None] | None = None,
        careteam_url: str | None = None,
        careteam_poll_s: float = 1.0,
    ) -> None:
        self.config = config
        self.careteam_url = careteam_url
        """The care-team store (``[careteam]``); ``None``: users and tokens from ``[web]``."""
        self.careteam_poll_s = careteam_poll_s
        self.board = Board(
            display_names=display_names or {},
            history_minutes=config.history_minutes,
            backlog=config.max_subscriber_backlog,
        )
        self.state = WebState(
            config=config,
            board=self.board,
            control=control,
            tokens=PatientTokens(digests=config.patient_tokens),
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._context: PluginContext | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        unknown = sorted(set(options) - SINK_OPTIONS)
        if unknown:
            raise ConfigError(
                f"sinks.web: unknown option(s) {', '.join(unknown)}; "
                "users, assignments and tokens belong in [web]"
            )
        web_section = dict(getattr(context.config, "web", {}) or {})
        web_section.update(options)
        config = parse_web_config(web_section)
        names: dict[str, str | None] = {}
        for profile in getattr(context.config, "patients", ()):
            names[profile.id] = profile.display_name
        team = careteam_config(context.config)
        sink = cls(
            config=config,
            control=context.monitor,
            display_names=names,
            careteam_url=store_url(context.config),
            careteam_poll_s=team.poll_s if team is not None else 1.0,
        )
        sink._context = context
        return sink

    def attach(self, control: MonitorControl) -> None:
        """Set what acknowledgements and symptom reports call (when made before the monitor)."""
        self.state.control = control

    # -- lifetime --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the web sink is not started")
        return self._port

    @property
    def base_url(self) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def patient_url(self, patient: str) -> str:
        """A fresh one-time link for ``patient``'s phone (a new token replaces the old)."""
        # the state's tokens: a care-team store replaces them at start
        token = self.state.tokens.issue(patient)
        return f"{self.base_url}/patient/{patient}?token={token}"

    async def start(self) -> None:
        if self.state.control is None and self._context is not None:
            # The service sets ``context.monitor`` after building its plugins.
            self.state.control = self._context.monitor
        if self.careteam_url is not None and self.state.team is None:
            store = await asyncio.to_thread(CareStore, url=self.careteam_url)
            self.state.team = TeamSync(store=store, state=self.state, poll_s=self.careteam_poll_s)
        app = build_app(self.state)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=2.0,
            access_log_class=RedactingAccessLogger,
            logger=server_logger(),
            # Bodies are inflated by monitor/web/bodies.py, bounded, with clear errors.
            auto_decompress=False,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_FIELD_BYTES,
            # aiohttp's default is an hour: a connection that sends nothing, or a request's
            # head a byte at a time, would hold a socket (and a file descriptor) that long.
            keepalive_timeout=self.config.request_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self._port = int(addresses[0][1]) if addresses else self.config.port
        log.info("dashboard listening on %s:%d", self.config.host, self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self.board.close_all()
        if runner is not None:
            await runner.cleanup()
        team, self.state.team = self.state.team, None
        if team is not None:
            await asyncio.to_thread(team.store.close)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- from the engine -------------------------------------------------------------------

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        try:
            self.board.on_sample(sample, flag)
        except Exception:  # a dashboard bug must never reach the engine
            log.exception("web sink: sample of %s not shown", sample.patient)

    def submit_state(self, state: ThermalState) -> None:
        try:
            self.board.on_state(state)
        except Exception:
            log.exception("web sink: state of %s not shown", state.patient)

    def submit_event(self, event: Event) -> None:
        try:
            self.board.on_event(event)
        except Exception:
            log.exception("web sink: event of %s not shown", event.patient)

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        try:
            self.board.on_record(record)
        except Exception:
            log.exception("web sink: record of %s not shown", record.patient)
