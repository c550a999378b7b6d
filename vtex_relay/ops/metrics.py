"""The metrics, in Prometheus' text format, read from Redis: the one source every host shares.

The scripts that change a job's state count it as they do (``lua/common.lua``: ``count``,
``stat``, ``head_is``), so a scrape reads a few small keys per account, never a job: its cost
is bounded by the number of accounts, whatever the backlog. Any process on any host that can
reach Redis serves the same figures (the intake at ``/metrics``, ``vtex-relay metrics``), and a
counter lives as long as Redis keeps its data: a worker's restart resets nothing.

A try counts what it did in a ``deliver.tally.Tally``, which ``finish.lua`` adds to the
counters with the try's outcome.

Labels are the account (the closed set of accounts with jobs, or configured), the job kind,
the state or outcome: never an order id, a job id or an invoice number.
"""

from collections.abc import Iterator

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from vtex_relay.deliver.tally import BUCKETS
from vtex_relay.operations import OPERATIONS as KIND_OPERATIONS
from vtex_relay.ops.backlog import account_statuses
from vtex_relay.settings import Settings
from vtex_relay.store import keys
from vtex_relay.store.keys import text

OPERATIONS = ("get-order", *KIND_OPERATIONS)
STATES = ("waiting", "ready", "running", "retrying", "throttled", "dead")


class RedisCollector(Collector):
    """Reads the relay's state from Redis at each scrape: the accounts view
    (``account_statuses``), then the heads, counters and process-wide keys, in two pipelined
    round trips."""

    def __init__(self, client: "redis.Redis", settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._read())
        except redis.RedisError:
            # The scrape still answers, so that an alert can say what is wrong.
            families = []
        up = GaugeMetricFamily(
            "vtex_relay_redis_up",
            "1 if Redis answered this scrape, else 0.",
            value=len(families) > 0,
        )
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        # The jobs by state are what `vtex-relay accounts` shows: read, and derived, there.
        statuses = account_statuses(self.client, self.settings)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(keys.WORKERS, 0, -1, withscores=True)
            pipe.get(keys.SWEPT)
            pipe.hgetall(keys.DURATIONS)
            for status in statuses:
                pipe.zrange(keys.account(status.account, "heads"), 0, 0, withscores=True)
                pipe.hgetall(keys.account(status.account, "stats"))
            replies = pipe.execute()
        (seconds, micros), workers, swept, durations = replies[:4]
        now = seconds + micros / 1e6
        yield from _process_wide(now, workers, swept, durations, self.settings.heartbeat_timeout)
        jobs = GaugeMetricFamily(
            "vtex_relay_jobs", "Jobs now in each state.", labels=["account", "state"]
        )
        held = GaugeMetricFamily(
            "vtex_relay_held_orders",
            "Orders held behind a dead job, waiting for an operator.",
            labels=["account"],
        )
        oldest = GaugeMetricFamily(
            "vtex_relay_oldest_job_age_seconds",
            "Age of the account's oldest job not yet delivered or dead (0: none).",
            labels=["account"],
        )
        paused = GaugeMetricFamily(
            "vtex_relay_account_paused_seconds",
            "What is left of the account's 429 pause (0: none).",
            labels=["account"],
        )
        counters = _Counters()
        for index, status in enumerate(statuses):
            name = status.account
            head, stats = replies[4 + 2 * index : 6 + 2 * index]
            for state in STATES:
                jobs.add_metric([name, state], getattr(status, state))
            held.add_metric([name], status.dead)  # a dead job holds its order
            oldest.add_metric([name], max(now - head[0][1], 0.0) if head else 0.0)
            until = status.paused_until.timestamp() if status.paused_until else 0.0
            paused.add_metric([name], max(until - now, 0.0))
            counters.add(name, stats)
        yield from (jobs, held, oldest, paused)
        yield from counters.families()


def _process_wide(
    now: float,
    workers: list[tuple[bytes, float]],
    swept: bytes | None,
    durations: dict[bytes, bytes],
    fresh: float,
) -> Iterator[Metric]:
    live = sum(1 for _, beat in workers if now - beat <= fresh)
    yield GaugeMetricFamily(
        "vtex_relay_workers", "Workers whose heartbeat is fresh (HEARTBEAT_TIMEOUT).", value=live
    )
    yield GaugeMetricFamily(
        "vtex_relay_sweep_last_run_timestamp_seconds",
        "When a worker's sweep last ran (Unix time; 0: never).",
        value=float(swept or 0),
    )
    histogram = HistogramMetricFamily(
        "vtex_relay_vtex_request_duration_seconds",
        "Duration of the workers' requests to VTEX, by operation.",
        labels=["operation"],
    )
    counts = {text(k): float(v) for k, v in durations.items()}
    for operation in OPERATIONS:
        cumulative, buckets = 0.0, []
        for bound in [f"{b:g}" for b in BUCKETS] + ["+Inf"]:
            cumulative += counts.get(f"{operation} {bound}", 0.0)
            buckets.append((bound, cumulative))
        histogram.add_metric([operation], buckets, counts.get(f"{operation} sum", 0.0))
    yield histogram


class _Counters:
    """The counter families, filled account by account from each account's stats hash
    (fields ``enqueued:KIND``, ``finished:KIND:OUTCOME``, ``tries:KIND:RESULT``,
    ``reconciliations:KIND:FOUND``)."""

    def __init__(self) -> None:
        self.by_prefix = {
            "enqueued": CounterMetricFamily(
                "vtex_relay_jobs_enqueued_total", "Jobs enqueued.", labels=["account", "kind"]
            ),
            "finished": CounterMetricFamily(
                "vtex_relay_jobs_finished_total",
                "Jobs finished: delivered, dead or discarded.",
                labels=["account", "kind", "outcome"],
            ),
            "tries": CounterMetricFamily(
                "vtex_relay_tries_total",
                "Tries, by the result of their last request to VTEX.",
                labels=["account", "kind", "result"],
            ),
            "reconciliations": CounterMetricFamily(
                "vtex_relay_reconciliations_total",
                "Reads of an order to learn whether an uncertain try landed.",
                labels=["account", "kind", "found"],
            ),
        }

    def add(self, account: str, stats: dict[bytes, bytes]) -> None:
        for raw, value in sorted(stats.items()):
            prefix, *labels = text(raw).split(":")
            family = self.by_prefix.get(prefix)
            if family is not None:
                family.add_metric([account, *labels], int(value))

    def families(self) -> Iterator[CounterMetricFamily]:
        yield from self.by_prefix.values()
