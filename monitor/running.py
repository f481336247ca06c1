"""Guards for everything the service runs, in the spirit of Telegraf's ``running_output``.

- :class:`Health` keeps, per component (``ticker``, ``source.NAME``, ``sink.NAME``), how
  often it failed, what kind of error it was last, and whether it is failing now. The
  ``/healthz`` endpoint and the MQTT status topic show its :meth:`Health.summary`.
- :class:`Supervisor` runs a coroutine in a task and restarts it with
  :class:`monitor.backoff.Backoff` whenever it raises (the engine's ticker, each source, each
  sink's own delivery tasks).
- :class:`RunningSink` wraps one :class:`monitor.plugins.Sink`: an exception in its
  ``submit_*`` is counted, logged once per kind of error (not once per call) and kept from
  the engine and from the other sinks; a task the sink started that dies with an exception
  gets the sink stopped and started again, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.backoff import Backoff
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import Sink

log = logging.getLogger(__name__)

RECENT_S = 60.0
"""A component that raised within this long is reported as failing."""
STABLE_S = 10.0
"""A restarted task that has run this long without raising starts its backoff afresh."""
MAX_ERROR_KINDS = 100
"""Kinds of error remembered per component for "log once" (then every kind is new)."""

Clock = Callable[[], float]


@dataclass(slots=True)
class ComponentHealth:
    """What :class:`Health` knows about one component."""

    errors: int = 0
    restarts: int = 0
    last_error: str | None = None
    """The exception's type and where it happened (never its message: it may carry data)."""
    last_error_at: float | None = None
    down: bool = False
    """Its task died and waits for its restart."""
    kinds: set[tuple[str, str]] = field(default_factory=set)

    def failing(self, now: float) -> bool:
        recent = self.last_error_at is not None and now - self.last_error_at < RECENT_S
        return self.down or recent


class Health:
    """Failures of the service's components; ``on_change`` is called when the set of failing
    components changes (checked on every failure and on every :meth:`check`)."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._components: dict[str, ComponentHealth] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._last_failing: frozenset[str] = frozenset()

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def component(self, name: str) -> ComponentHealth:
        return self._components.setdefault(name, ComponentHealth())

    def failed(self, name: str, where: str, err: BaseException) -> bool:
        """Count a failure of ``name``; True if this kind of error is new for it (log it)."""
        c = self.component(name)
        c.errors += 1
        kind = (where, type(err).__name__)
        c.last_error = f"{kind[1]} in {where}"
        c.last_error_at = self._clock()
        new = kind not in c.kinds
        if new:
            if len(c.kinds) >= MAX_ERROR_KINDS:
                c.kinds.clear()
            c.kinds.add(kind)
        self.check()
        return new

    def set_down(self, name: str, down: bool) -> None:
        c = self.component(name)
        if down and not c.down:
            c.restarts += 1
        c.down = down
        self.check()

    def failing(self) -> frozenset[str]:
        now = self._clock()
        return frozenset(n for n, c in self._components.items() if c.failing(now))

    def check(self) -> None:
        """Tell the listeners if the set of failing components changed."""
        failing = self.failing()
        if failing == self._last_failing:
            return
        for name in sorted(self._last_failing - failing):
            c = self._components[name]
            log.info("%s ok again (%d errors, %d restarts so far)", name, c.errors, c.restarts)
        self._last_failing = failing
        summary = self.summary()
        for listener in self._listeners:
            try:
                listener(summary)
            except Exception:
                log.exception("health listener failed")

    def summary(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "failing": [...], "components": {...}}``: names,
        counts and error types only (no messages, no patient data)."""
        now = self._clock()
        components = {
            name: {
                "status": "failing" if c.failing(now) else "ok",
                "down": c.down,
                "errors": c.errors,
                "restarts": c.restarts,
                "last_error": c.last_error,
                "last_error_age_s": (
                    None if c.last_error_at is None else round(now - c.last_error_at, 1)
                ),
            }
            for name, c in sorted(self._components.items())
        }
        failing = sorted(n for n, c in components.items() if c["status"] == "failing")
        return {
            "status": "degraded" if failing else "ok",
            "failing": failing,
            "components": components,
        }


class Supervisor:
    """Runs coroutines in tasks and restarts each one, with backoff, when it raises."""

    def __init__(self, *, health: Health, stable_s: float = STABLE_S) -> None:
        self._health = health
        self._stable_s = stable_s
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(
        self,
        name: str,
        factory: Callable[[], Coroutine[Any, Any, None]],
        *,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> asyncio.Task[None]:
        """Run ``factory()`` as component ``name`` until it returns or is cancelled."""
        task = asyncio.create_task(self._supervise(name, factory, on_failure), name=name)
        self._tasks.append(task)
        return task

    async def _supervise(
        self,
        name: str,
        factory: Callable[[], Coroutine[Any, Any, None]],
        on_failure: Callable[[BaseException], None] | None,
    ) -> None:
        backoff = Backoff()
        health = self._health
        while True:
            inner = asyncio.create_task(factory(), name=f"{name}-run")
            if health.component(name).down:
                health.set_down(name, False)
                log.info("%s restarted", name)
            try:
                done, _ = await asyncio.wait({inner}, timeout=self._stable_s)
                if not done:
                    backoff.reset()
                await inner
                return
            except asyncio.CancelledError:
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inner
                raise
            except Exception as err:
                if on_failure is not None:
                    on_failure(err)
                new = health.failed(name, "task", err)
                health.set_down(name, True)
                delay = backoff.next_delay()
                if new:
                    log.error(
                        "%s failed (%s); restarting in %.1f s (further failures of this "
                        "kind are counted, not logged)",
                        name,
                        type(err).__name__,
                        delay,
                        exc_info=err,
                    )
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Cancel every task and wait for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class RunningSink:
    """One sink, guarded: nothing it raises reaches the engine or the other sinks."""

    __slots__ = ("_health", "_restarting", "_started", "_tasks", "component", "counters", "sink")

    def __init__(self, sink: Sink, *, health: Health) -> None:
        self.sink = sink
        self.component = f"sink.{sink.name}"
        self._health = health
        self._tasks: set[asyncio.Task[Any]] = set()
        """The sink's own tasks (started by its ``start()``)."""
        self._restarting: asyncio.Task[None] | None = None
        self._started = False
        self.counters: dict[str, int] = {}

    @property
    def name(self) -> str:
        return self.sink.name

    def _failed(self, where: str, err: Exception) -> None:
        self.counters[where] = self.counters.get(where, 0) + 1
        if self._health.failed(self.component, where, err):
            log.error(
                "sink %s raised %s in %s; isolated (further errors of this kind are "
                "counted, not logged)",
                self.sink.name,
                type(err).__name__,
                where,
                exc_info=err,
            )

    # -- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sink (its failure here propagates: the service cannot run as
        configured) and watch the tasks it started."""
        before = asyncio.all_tasks()
        await self.sink.start()
        self._started = True
        self._watch(asyncio.all_tasks() - before)
        self._health.component(self.component)

    def _watch(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """Watch the tasks whose coroutine is a method of this sink."""
        for task in tasks:
            frame = getattr(task.get_coro(), "cr_frame", None)
            if frame is not None and frame.f_locals.get("self") is self.sink:
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._started or task.cancelled():
            return
        err = task.exception()
        if err is None or not isinstance(err, Exception):
            return
        self._failed(f"task {task.get_name()}", err)
        self._health.set_down(self.component, True)
        self._started = False
        self._restarting = asyncio.get_running_loop().create_task(
            self._restart(), name=f"{self.component}-restart"
        )

    async def _restart(self) -> None:
        """Stop the sink, cancel what its ``stop()`` left running (so no task runs twice),
        then start it again, with backoff."""
        backoff = Backoff()
        while True:
            await asyncio.sleep(backoff.next_delay())
            try:
                await self.sink.stop()
            except Exception as err:
                self._failed("stop", err)
            leftovers, self._tasks = self._tasks, set()
            for task in leftovers:
                task.cancel()
            for task in leftovers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            try:
                await self.start()
            except Exception as err:
                self._failed("start", err)
                continue
            self._health.set_down(self.component, False)
            log.info("sink %s restarted", self.sink.name)
            self._restarting = None
            return

    async def stop(self) -> None:
        self._started = False
        restarting, self._restarting = self._restarting, None
        if restarting is not None:
            restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restarting
        try:
            await self.sink.stop()
        except Exception as err:
            self._failed("stop", err)

    # -- submit ---------------------------------------------------------------------------

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        try:
            self.sink.submit_sample(sample, flag)
        except Exception as err:
            self._failed("submit_sample", err)

    def submit_samples(self, samples: Sequence[Sample], flags: Sequence[SampleFlag]) -> None:
        try:
            self.sink.submit_samples(samples, flags)
        except Exception as err:
            self._failed("submit_samples", err)

    def submit_state(self, state: ThermalState) -> None:
        try:
            self.sink.submit_state(state)
        except Exception as err:
            self._failed("submit_state", err)

    def submit_event(self, event: Event) -> None:
        try:
            self.sink.submit_event(event)
        except Exception as err:
            self._failed("submit_event", err)

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        try:
            self.sink.submit_record(record)
        except Exception as err:
            self._failed("submit_record", err)

    def submit_health(self, summary: dict[str, Any]) -> None:
        try:
            self.sink.submit_health(summary)
        except Exception as err:
            self._failed("submit_health", err)
