"""Prometheus metrics (SPEC §6.4) on a registry of their own.

Counters and histograms are fed by the use cases through the `Telemetry` port. Gauges that
describe the database (pending runs, dispatcher backlog, each metric's data age) are read when
Prometheus scrapes, so every replica reports the same, current numbers and nothing has to
keep them in sync. Each `PrometheusTelemetry` owns its `CollectorRegistry`: several containers
in one process (tests, embedded demos) never collide in the global default registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from metrics_orchestrator.application.incidents import FreshnessGauges
from metrics_orchestrator.application.ports.queries import RunGauges
from metrics_orchestrator.domain.incidents import IncidentKind
from metrics_orchestrator.domain.log_events import ON_METRICS_SCRAPE_ERROR

log = structlog.get_logger(__name__)

PREFIX = "metrics_orchestrator"
# Event handling is one transaction: milliseconds, up to seconds under contention.
EVENT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A publish call goes to SNS over the network.
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PENDING_RUNS = f"{PREFIX}_runs_pending"
DISPATCHER_BACKLOG = f"{PREFIX}_dispatcher_backlog"
METRIC_DATA_AGE = f"{PREFIX}_metric_data_age_seconds"
METRIC_OVERDUE = f"{PREFIX}_metric_overdue"
DATASET_LATE = f"{PREFIX}_dataset_late"
INCIDENTS_OPEN = f"{PREFIX}_incidents_open"
NOTIFICATION_DELIVERIES = f"{PREFIX}_notification_deliveries"
# the outbox states a scrape counts (delivered rows are history: they only grow)
COUNTED_DELIVERY_STATES = ("pending", "undeliverable")


class RunGaugeCollector(Collector):
    """Reads the run gauges from the database at scrape time."""

    def __init__(self, read: Callable[[], RunGauges]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        # Describing without reading keeps registration free of database access.
        yield from _families(None)

    def collect(self) -> Iterator[Metric]:
        try:
            gauges = self._read()
        except Exception as exc:
            # A scrape must not fail because the database is briefly away; the gauges are
            # left out of this scrape (Prometheus shows them as absent) and the error logged.
            log.warning(ON_METRICS_SCRAPE_ERROR, message="run gauges unavailable", error=str(exc))
            return
        yield from _families(gauges)


def _families(gauges: RunGauges | None) -> Iterator[Metric]:
    pending = GaugeMetricFamily(PENDING_RUNS, "Runs waiting in pending_dependencies.")
    backlog = GaugeMetricFamily(
        DISPATCHER_BACKLOG, "Queued runs whose not_before has passed, waiting to be published."
    )
    data_age = GaugeMetricFamily(
        METRIC_DATA_AGE,
        "Seconds since the data time of the metric's latest succeeded run: the oldest external "
        "dataset version behind it (SPEC §8), by the control plane's clock.",
        labels=["metric"],
    )
    if gauges is not None:
        pending.add_metric([], gauges.pending_runs)
        backlog.add_metric([], gauges.dispatcher_backlog)
        for code, age in sorted(gauges.data_age_seconds.items()):
            data_age.add_metric([code], age)
    yield pending
    yield backlog
    yield data_age


class FreshnessCollector(Collector):
    """SPEC §9 at scrape time: each objective judged now, and the open incidents by kind."""

    def __init__(self, read: Callable[[], FreshnessGauges]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        yield from _freshness_families(None)

    def collect(self) -> Iterator[Metric]:
        try:
            gauges = self._read()
        except Exception as exc:
            log.warning(
                ON_METRICS_SCRAPE_ERROR, message="freshness gauges unavailable", error=str(exc)
            )
            return
        yield from _freshness_families(gauges)


def _freshness_families(gauges: FreshnessGauges | None) -> Iterator[Metric]:
    overdue = GaugeMetricFamily(
        METRIC_OVERDUE,
        "1 when the metric is overdue (its max_data_age, SPEC §9), else 0.",
        labels=["metric"],
    )
    late = GaugeMetricFamily(
        DATASET_LATE,
        "1 when the dataset is late (its expected_every + grace, SPEC §9), else 0.",
        labels=["dataset"],
    )
    incidents = GaugeMetricFamily(
        INCIDENTS_OPEN,
        "Open incidents, by kind (SPEC §9); 0 for a kind with none.",
        labels=["kind"],
    )
    deliveries = GaugeMetricFamily(
        NOTIFICATION_DELIVERIES,
        "Notifications waiting to be delivered (pending) or given up on after 24 h "
        "(undeliverable), by state (SPEC §9).",
        labels=["state"],
    )
    if gauges is not None:
        for code, freshness in sorted(gauges.board.metrics.items()):
            overdue.add_metric([code], int(freshness.failing))
        for dataset_id, freshness in sorted(gauges.board.datasets.items()):
            late.add_metric([dataset_id], int(freshness.failing))
        # every kind, so that an alert on `> 0` sees its series go back to 0 rather than vanish
        for kind in IncidentKind:
            incidents.add_metric([kind.value], gauges.open_incidents.get(kind.value, 0))
        for state in COUNTED_DELIVERY_STATES:
            deliveries.add_metric([state], gauges.deliveries.get(state, 0))
    yield overdue
    yield late
    yield incidents
    yield deliveries


class PrometheusTelemetry:
    """The `Telemetry` port as Prometheus metrics, plus their exposition."""

    def __init__(
        self,
        gauges: Callable[[], RunGauges] | None = None,
        freshness: Callable[[], FreshnessGauges] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._events = self._counter(
            "events_received",
            "Messages handled, by event type and outcome (processed, duplicate, rejected).",
            ["event_type", "outcome"],
        )
        self._event_seconds = self._histogram(
            "event_processing_seconds",
            "Time to handle one received message, by event type.",
            EVENT_BUCKETS,
            ["event_type"],
        )
        self._transitions = self._counter(
            "run_transitions",
            "Run status transitions; from_status 'none' is a run created in to_status.",
            ["from_status", "to_status"],
        )
        self._published = self._counter("dispatch_published", "Run requests published.")
        self._publish_failures = self._counter(
            "dispatch_failures", "Run requests whose publication failed."
        )
        self._dispatch_seconds = self._histogram(
            "dispatch_seconds",
            "Time of one publish call (up to 10 run requests).",
            DISPATCH_BUCKETS,
        )
        if gauges is not None:
            self.registry.register(RunGaugeCollector(gauges))
        if freshness is not None:
            self.registry.register(FreshnessCollector(freshness))

    # Every metric of this telemetry is named under PREFIX and lives in its own registry.

    def _counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _histogram(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> Histogram:
        return Histogram(
            f"{PREFIX}_{name}", documentation, labels, buckets=buckets, registry=self.registry
        )

    # the Telemetry port

    def event_processed(self, event_type: str, outcome: str, seconds: float) -> None:
        self._events.labels(event_type=event_type, outcome=outcome).inc()
        self._event_seconds.labels(event_type=event_type).observe(seconds)

    def run_transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        if count > 0:
            self._transitions.labels(from_status=from_status, to_status=to_status).inc(count)

    def dispatch_published(self, count: int, seconds: float) -> None:
        if count > 0:
            self._published.inc(count)
        self._dispatch_seconds.observe(seconds)

    def dispatch_failed(self, count: int) -> None:
        if count > 0:
            self._publish_failures.inc(count)

    # exposition

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric, and its content type."""
        return generate_latest(_WithoutCreatedSeries(self.registry)), CONTENT_TYPE_LATEST


class _WithoutCreatedSeries:
    """The registry's metrics minus the `*_created` samples of counters and histograms.

    They hold each series' creation time, which Prometheus's text format does not need (rates
    and resets work without them) and operators kept mistaking for metrics of their own. This
    filter is local: the process-wide `disable_created_metrics()` would change every registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric
