"""What the workers of one cluster must share, checked among them: the thresholds store.

Symptom reports, suggestions and accepted thresholds live in the thresholds store
(docs/thresholds.md); the workers must share one, or a suggestion is seen only on the
dashboard of the worker that owned the patient when the reports came, and a decision taken
on another worker's dashboard refers to a suggestion its store does not have. Each worker
puts its store's random id (:meth:`~monitor.thresholds.store.ThresholdStore.identity`: the
same database gives the same id, however its URL is spelled) into its heartbeat and
compares it with every other live worker's: a worker on another store is logged as an error
(once per worker start, naming the worker, never a patient) and counted
(``thresholds_store_mismatch``); ``heatmon cluster status`` shows it too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

HEARTBEAT_FIELD = "thresholds_store"
"""The heartbeat's field with the worker's thresholds store id (absent: no ``thresholds``
sink, or a worker of an earlier version)."""


class SharedStores:
    """One worker's side: :attr:`mine` goes into the heartbeat; :meth:`check` compares
    the live workers' (each worker start once)."""

    def __init__(self, *, worker_id: str, count: Callable[[str], None]) -> None:
        self.worker_id = worker_id
        self._count = count
        self.mine: str | None = None
        """This worker's thresholds store id, once its ``thresholds`` sink has opened it."""
        self._checked: set[tuple[str, float]] = set()
        """(worker, its start) compared already."""

    async def check(self, workers: KeyValue, live: Iterable[str]) -> None:
        """Compare this worker's store with the store of each live worker not compared
        yet."""
        if self.mine is None:
            return
        for peer in live:
            if peer == self.worker_id:
                continue
            try:
                doc = json.loads((await workers.get(peer)).value or b"{}")
            except (KeyNotFoundError, NatsError, ValueError):
                continue  # gone, or not readable now: again at the next turn
            theirs, started = doc.get(HEARTBEAT_FIELD), doc.get("started")
            if not isinstance(theirs, str) or not isinstance(started, int | float):
                continue  # no thresholds sink there (yet)
            if (peer, float(started)) in self._checked:
                continue
            self._checked.add((peer, float(started)))
            if theirs != self.mine:
                self._count("thresholds_store_mismatch")
                log.error(
                    "cluster: worker %s uses another thresholds store than this worker "
                    "(%s); the workers must share one ([careteam] url, or [sinks.thresholds] "
                    "path on a shared disk; docs/scaling.md), or suggestions and accepted "
                    "thresholds are seen only on the dashboard of the worker that made them",
                    peer,
                    self.worker_id,
                )


def stores_differ(ids: Iterable[str | None]) -> bool:
    """Whether the workers' heartbeats name more than one thresholds store."""
    return len({i for i in ids if i is not None}) > 1
