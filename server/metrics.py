"""`/metrics`: what an operator watches, in the Prometheus text format.

Three kinds of numbers, each gathered where it costs least:

- counted as it happens, once per request: events published and how long
  publishing took (prometheus_client objects in this app's own registry);
- read at scrape time from the state that already exists: the log head,
  open streams, the push queue, open compliance warnings, and the streams'
  deliveries, which the fan-out loop keeps as plain integers
  (server/stream/counters.py) because it must not pay a library call per
  delivery;
- counted by the push worker (push and webhooks) in its own process and read from the files it
  writes (push/metrics.py).

Every web process answers for itself and its own push worker: scrape each
one as its own target; the log head and the warnings are the same in all of
them, the counters add up across them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from server.state import AppState

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
WARNING_LEVELS = ("approaching", "breach", "data_incomplete")
# Publishing takes about a millisecond with synchronous=FULL on an SSD; the
# upper buckets catch a disk or lock that makes publishers wait.
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.published = Counter(
            "sunbid_events_published",
            "Events appended to the log through POST /api/projects/{id}/events",
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "sunbid_publish_duration_seconds",
            "Server time of a POST /api/projects/{id}/events, from the request to its 201",
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # memory, CPU, open files

    def observe_publish(self, seconds: float) -> None:
        self.published.inc()
        self.publish_seconds.observe(seconds)

    async def exposition(self, state: AppState) -> bytes:
        """The text to answer a scrape with: the async reads first, then one pass."""
        families = [*_streams(state), *_bus(state), *await _sidefiles(state)]
        return generate_latest(_Scrape([*self.registry.collect(), *families]))


class _Scrape:
    """A collector over families already gathered (the async reads are done)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _streams(state: AppState) -> Iterator[Metric]:
    head = GaugeMetricFamily("sunbid_log_head", "The latest seq in the event log")
    head.add_metric([], state.store.head)
    yield head

    open_by_transport = {counters.transport: 0 for counters in state.stream_counters}
    delivered = {c.transport: c.closed_deliveries for c in state.stream_counters}
    for connection in list(state.connections):
        feed = connection.feed
        open_by_transport[feed.counters.transport] += 1
        delivered[feed.counters.transport] += feed.delivered
    connections = GaugeMetricFamily(
        "sunbid_stream_connections", "Open streams", labels=["transport"]
    )
    deliveries = CounterMetricFamily(
        "sunbid_stream_deliveries", "Events sent to stream clients", labels=["transport"]
    )
    lagging = CounterMetricFamily(
        "sunbid_stream_lagging_closes",
        "Streams cut off because their client did not keep up (4008 lagging)",
        labels=["transport"],
    )
    for counters in state.stream_counters:
        transport = counters.transport
        connections.add_metric([transport], open_by_transport[transport])
        deliveries.add_metric([transport], delivered[transport])
        lagging.add_metric([transport], counters.lagging_closes)
    yield from (connections, deliveries, lagging)


def _bus(state: AppState) -> Iterator[Metric]:
    """The Redis bus's counters (none for the one-process bus): how often Redis
    lost something that the log then supplied."""
    for name, (description, value) in state.bus.counters().items():
        family = CounterMetricFamily(name, description)
        family.add_metric([], value)
        yield family


async def _sidefiles(state: AppState) -> list[Metric]:
    """What the push worker and the compliance watchdog keep on disk."""
    push = state.push
    pushes = CounterMetricFamily(
        "sunbid_push_deliveries",
        "Push attempts by outcome: delivered, gone (the subscription ended), "
        "failed (given up), retry (to be tried again)",
        labels=["outcome"],
    )
    # `push` is None only before start-up has finished, when nothing is served.
    counts = push.attempts() if push else {}
    for outcome, n in counts.items():
        pushes.add_metric([outcome], n)
    hooks = CounterMetricFamily(
        "sunbid_webhook_deliveries",
        "Webhook attempts by outcome: delivered (2xx), retry (failed, to be tried "
        "again), disabled (failed, and the webhook given up on)",
        labels=["outcome"],
    )
    for outcome, n in (push.webhook_attempts() if push else {}).items():
        hooks.add_metric([outcome], n)
    depth = GaugeMetricFamily(
        "sunbid_push_queue_depth", "Push deliveries waiting to be sent or retried"
    )
    depth.add_metric([], await push.queue_depth() if push else 0)

    warnings = GaugeMetricFamily(
        "sunbid_compliance_open_warnings",
        "Compliance warnings not resolved yet (stages and the public's cases), by level",
        labels=["level"],
    )
    by_level = await state.compliance.warnings.open_by_level()
    if state.respond is not None:  # the public's cases' due times count too
        for level, n in (await state.respond.store.open_by_level()).items():
            by_level[level] = by_level.get(level, 0) + n
    for level in sorted({*WARNING_LEVELS, *by_level}):
        warnings.add_metric([level], by_level.get(level, 0))
    return [pushes, hooks, depth, warnings]
