"""``GET /metrics``: Prometheus text format, built per request from the database.

Every figure is read from the database (the queue tables and the worker registry), so workers
in different processes and on different hosts add up correctly, and the web server may run any
number of processes. Counters are per queue and worker name: the rows of one worker's
successive processes are summed, so a restart never makes a counter go down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from fits_storage.queues.overview import QueueOverview, all_queues
from fits_storage.queues.registry import BUCKETS, WorkerState, worker_states
from fits_storage.web.state import app_state, read_session

router = APIRouter()
PREFIX = "fits_storage"


@dataclass
class WorkerTotals:
    """One worker name's figures on one queue, summed over its processes."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    seconds_total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def add(self, state: WorkerState) -> None:
        self.processed += state.processed
        self.failed += state.failed
        self.retried += state.retried
        self.seconds_total += state.seconds_total
        self.buckets = [a + b for a, b in zip(self.buckets, state.buckets, strict=True)]


class Snapshot(Collector):
    """The figures read for one request, as metric families."""

    def __init__(
        self, queues: list[QueueOverview], workers: list[WorkerState], database_up: bool
    ) -> None:
        self.queues, self.workers, self.database_up = queues, workers, database_up

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_database_up",
            "1 if the database could be read for these metrics",
            value=1 if self.database_up else 0,
        )
        if not self.database_up:
            return
        yield from self._queue_gauges()
        yield from self._worker_figures()

    def _queue_gauges(self) -> Iterator[Metric]:
        live: dict[str, int] = {}
        for state in self.workers:
            live[state.queue] = live.get(state.queue, 0) + int(state.live)
        gauges = {
            "queue_depth": ("entries waiting (ready or deferred)", lambda q: q.depth),
            "queue_deferred": (
                "waiting entries held back until a later time (backing off, or deferred)",
                lambda q: q.deferred,
            ),
            "queue_in_progress": ("entries being processed", lambda q: q.in_progress),
            "queue_failed": ("failed entries waiting for a human", lambda q: q.failed),
            "queue_oldest_waiting_seconds": (
                "age of the oldest waiting entry (0 when none waits)",
                lambda q: q.oldest_waiting_seconds or 0.0,
            ),
            "queue_live_workers": (
                "workers heartbeating on the queue",
                lambda q: live.get(q.name, 0),
            ),
        }
        for name, (documentation, value) in gauges.items():
            family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=["queue"])
            for queue in self.queues:
                family.add_metric([queue.name], value(queue))
            yield family

    def _worker_figures(self) -> Iterator[Metric]:
        totals: dict[tuple[str, str], WorkerTotals] = {}
        for state in self.workers:
            totals.setdefault((state.queue, state.name), WorkerTotals()).add(state)
        labels = ["queue", "worker"]
        counters = {
            "items_processed": ("entries processed successfully", "processed"),
            "items_failed": ("entries failed for good", "failed"),
            "items_retried": ("entries handed back to be retried later", "retried"),
        }
        for name, (documentation, attribute) in counters.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)
            for key, total in totals.items():
                family.add_metric(list(key), getattr(total, attribute))
            yield family
        histogram = HistogramMetricFamily(
            f"{PREFIX}_processing_seconds",
            "time to process an entry successfully",
            labels=labels,
        )
        bounds = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
        for key, total in totals.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, total.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric(list(key), cumulative, total.seconds_total)
        yield histogram


@router.get("/metrics")
def metrics(request: Request) -> Response:
    try:
        with read_session(app_state(request)) as session:
            snapshot = Snapshot(all_queues(session), worker_states(session), True)
    except Exception:  # noqa: BLE001 - reported as fits_storage_database_up 0
        snapshot = Snapshot([], [], False)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
