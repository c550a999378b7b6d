"""``GET /metrics``: the relay's metrics (``vtex_relay.ops.metrics``, read from Redis) and this
intake process's own requests.

The request counters live in this process (as every HTTP server's do): Prometheus scrapes
each intake process as a target of its own and sums them (``sum by (route, status)``); the
relay's metrics are the same from every process, read from Redis at each scrape.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from vtex_relay.ops.metrics import RedisCollector
from vtex_relay.settings import Settings
from vtex_relay.store import connections

# Seconds; an intake answer is usually a millisecond or two, a GET order passthrough VTEX's time.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IntakeMetrics:
    """The registry one intake process serves: the Redis collector and its request metrics."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RedisCollector(connections.redis_client(), settings))
        self.requests = Counter(
            "vtex_relay_intake_requests_total",
            "Requests this intake process answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "vtex_relay_intake_request_duration_seconds",
            "Time this intake process took to answer, by route.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.durations.labels(route).observe(seconds)

    def scrape(self) -> bytes:
        """The text format; reads Redis (call it off the event loop)."""
        return generate_latest(self.registry)
