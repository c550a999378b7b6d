"""The metrics: after traffic that fills every series, both endpoints (the intake's /metrics
and ``vtex-relay metrics``) pass ``promtool check metrics``, agree with ``vtex-relay accounts
--json`` and ``dlq list``, show what VTEX (the sandbox) received, and show no order id, job
id or token; a real Prometheus server scrapes both; a scrape's Redis work does not grow with
the backlog."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import APP_TOKEN
from tests.harness import Child
from tests.processes import ROOT, Worker, free_port, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.ops.dead_letters import list_dead
from vtex_relay.sandbox import SandboxControl

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TRACKING_NUMBER = {"trackingNumber": "TN-1", "courier": "Correios"}
TRACKING = {
    "isDelivered": False,
    "events": [{"city": "Rio", "state": "RJ", "description": "out", "date": "2024-02-01"}],
}


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


class Exporter(Child):
    """``vtex-relay metrics --port 0``; ``url`` once it listens."""

    url = ""

    def start(self) -> "Exporter":
        self.spawn([sys.executable, "-m", "vtex_relay", "metrics", "--port", "0"])
        self.url = self.wait_until(self._listening, 30, "the exporter to listen")
        return self

    def _listening(self) -> str | None:
        found = re.search(r"metrics on (http://\S+)", self.log())
        return found.group(1) if found else None


@pytest.fixture
def exporter(redis_server: object) -> Iterator[Exporter]:
    process = Exporter("exporter", env=dict(os.environ), cwd=ROOT).start()
    yield process
    process.stop()


@pytest.fixture
def checking(sandbox: SandboxControl, redis_client: redis.Redis) -> Iterator[Worker]:
    """A worker that reads the order before each invoice (the GET order series)."""
    worker = Worker({**os.environ, "VERIFY_ORDER_TOTAL": "true"}, "wmetrics").start()
    yield worker
    worker.stop()


def promtool_accepts(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs it where apt-get can)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def delivered(sandbox: SandboxControl, order_id: str, count: int) -> bool:
    writes = [r for r in sandbox.requests(order_id=order_id) if r.method != "GET"]
    return sum(r.status == 200 for r in writes) >= count


def test_every_series_after_traffic(
    sandbox: SandboxControl,
    checking: Worker,
    redis_client: redis.Redis,
    intake: str,
    exporter: Exporter,
) -> None:
    # Delivered: the three calls (a GET order before the invoice).
    enqueue_invoice("o-ok", invoice("NF-1", 10000), account="storea")
    enqueue_tracking_number("o-ok", "NF-1", TRACKING_NUMBER, account="storea")
    enqueue_tracking("o-ok", "NF-1", TRACKING, account="storea")
    # Dead (4xx), with a job held behind it; another dead, then discarded.
    sandbox.set_faults(fail_orders={"o-dead": 400, "o-gone": 400, "o-5xx": 503, "o-429": 429})
    dead = enqueue_invoice("o-dead", invoice("NF-2", 10000), account="storea")
    enqueue_tracking_number("o-dead", "NF-2", TRACKING_NUMBER, account="storea")
    gone = enqueue_invoice("o-gone", invoice("NF-3", 10000), account="storeb")
    enqueue_invoice("o-5xx", invoice("NF-4", 10000), account="storeb")
    enqueue_invoice("o-429", invoice("NF-5", 10000), account="storec")
    wait_for(lambda: len(list_dead(redis_client)) == 2, what="two dead jobs")
    wait_for(lambda: len(sandbox.requests(order_id="o-5xx")) >= 4, what="a 5xx")
    wait_for(lambda: any(r.status == 429 for r in sandbox.requests()), what="a 429")
    assert CliRunner().invoke(cli, ["dlq", "discard", gone]).exit_code == 0
    sandbox.set_faults(fail_orders={"o-dead": 400})
    wait_for(lambda: delivered(sandbox, "o-5xx", 1) and delivered(sandbox, "o-ok", 3))
    # An answer lost after VTEX applied the call: the next try reconciles and finds it.
    sandbox.set_faults(drop_writes=["o-drop"])
    enqueue_invoice("o-drop", invoice("NF-6", 10000), account="storeb")
    wait_for(lambda: "already at VTEX" in checking.log(), what="the reconciliation", timeout=30)
    wait_for(lambda: delivered(sandbox, "o-429", 1), timeout=30, what="o-429 after its pause")

    httpx.get(f"{intake}/metrics")  # counted once answered: the next scrape shows it
    texts = {
        "intake": httpx.get(f"{intake}/metrics").text,
        "exporter": httpx.get(f"{exporter.url}").text,
    }
    for where, text in texts.items():
        promtool_accepts(text)
        for secret in (APP_TOKEN, "o-dead", "NF-2", dead, gone):
            assert secret not in text, f"{secret} in the {where}'s metrics"
    intake_only = samples(texts["intake"])
    assert value(intake_only, "vtex_relay_intake_requests_total", route="metrics", status="200")
    got = samples(texts["exporter"])
    assert value(got, "vtex_relay_redis_up") == 1
    assert value(got, "vtex_relay_jobs", account="storea", state="dead") == 1
    assert value(got, "vtex_relay_held_orders", account="storea") == 1
    assert value(got, "vtex_relay_jobs_enqueued_total", account="storea", kind="invoice") == 2
    assert value(got, "vtex_relay_jobs_enqueued_total", account="storea", kind="tracking") == 1
    finished = "vtex_relay_jobs_finished_total"
    assert value(got, finished, account="storea", kind="tracking", outcome="delivered") == 1
    assert value(got, finished, account="storea", kind="invoice", outcome="dead") == 1
    assert value(got, finished, account="storeb", kind="invoice", outcome="discarded") == 1
    tries = "vtex_relay_tries_total"
    assert value(got, tries, account="storea", kind="invoice", result="4xx") == 1
    assert value(got, tries, account="storeb", kind="invoice", result="5xx") >= 1
    assert value(got, tries, account="storec", kind="invoice", result="429") >= 1
    assert value(got, tries, account="storeb", kind="invoice", result="timeout") >= 1
    found = "vtex_relay_reconciliations_total"
    assert value(got, found, account="storeb", kind="invoice", found="found") == 1
    gets = value(got, "vtex_relay_vtex_request_duration_seconds_count", operation="get-order")
    assert gets == len(sandbox.requests(method="GET"))
    assert value(got, "vtex_relay_workers") == 1
    assert value(got, "vtex_relay_sweep_last_run_timestamp_seconds") > 0
    # The same Redis, read by the operator's commands.
    assert_agrees(got, redis_client)


def assert_agrees(got: Samples, client: redis.Redis) -> None:
    """The gauges are what ``vtex-relay accounts --json`` and ``dlq list`` show."""
    listed = CliRunner().invoke(cli, ["accounts", "--json"])
    assert listed.exit_code == 0, listed.output
    for row in json.loads(listed.stdout):
        for state in ("waiting", "ready", "running", "retrying", "throttled", "dead"):
            shown = value(got, "vtex_relay_jobs", account=row["account"], state=state)
            assert shown == row[state], (row["account"], state)
    dead = [record.account for record in list_dead(client)]
    for account in {row["account"] for row in json.loads(listed.stdout)}:
        assert value(got, "vtex_relay_held_orders", account=account) == dead.count(account)


def test_the_oldest_job_s_age_and_a_scrape_s_bounded_cost(
    redis_client: redis.Redis, exporter: Exporter
) -> None:
    """No worker runs: the backlog waits and ages. A scrape's Redis commands are the same
    for 10 waiting jobs as for 1,000."""
    enqueue_invoice("o-first", invoice("NF-1"), account="storea")

    def aged() -> float:
        got = samples(httpx.get(exporter.url).text)
        return value(got, "vtex_relay_oldest_job_age_seconds", account="storea")

    wait_for(lambda: aged() >= 1.0, what="the oldest job to age a second")
    assert value(samples(httpx.get(exporter.url).text), "vtex_relay_workers") == 0

    def commands_per_scrape() -> int:
        redis_client.config_resetstat()
        httpx.get(exporter.url)
        stats = redis_client.info("commandstats")
        skip = ("cmdstat_config", "cmdstat_info")
        return sum(int(v["calls"]) for k, v in stats.items() if k not in skip)

    few = commands_per_scrape()
    for n in range(999):
        enqueue_invoice(f"o-{n}", invoice(f"NF-{n}"), account="storea")
    assert commands_per_scrape() == few


@pytest.fixture
def prometheus(tmp_path: Path) -> str:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (make test installs it where apt-get can)")
    return shutil.which("prometheus") or ""


def test_a_prometheus_server_scrapes_the_intake_and_the_exporter(
    prometheus: str,
    tmp_path: Path,
    intake: str,
    exporter: Exporter,
    sandbox: SandboxControl,
    redis_client: redis.Redis,
) -> None:
    port = free_port()
    targets = [url.split("//")[1].split("/")[0] for url in (intake, exporter.url)]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: vtex-relay-intake\n    static_configs: [{{targets: ['{targets[0]}']}}]\n"
        f"  - job_name: vtex-relay-metrics\n    static_configs: [{{targets: ['{targets[1]}']}}]\n"
    )
    server = Child("prometheus", env=dict(os.environ), cwd=tmp_path)
    server.spawn(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tempfile.mkdtemp(dir=tmp_path)}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expression: str) -> dict[str, float]:
        try:
            answer = httpx.get(api, params={"query": expression}).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {r["metric"].get("job", ""): float(r["value"][1]) for r in answer["data"]["result"]}

    try:
        # A backlog waits (no worker runs): its age, as both targets serve it.
        enqueue_invoice("o-wait", invoice("NF-1"), account="storea")
        age = 'vtex_relay_oldest_job_age_seconds{account="storea"}'

        def aged() -> dict[str, float] | None:
            found = query(age)
            return found if len(found) == 2 and min(found.values()) >= 2 else None

        ages = wait_for(aged, timeout=60, what="Prometheus to scrape the age from both targets")
        assert set(ages) == {"vtex-relay-intake", "vtex-relay-metrics"}
        # A job dead-lettered by a real worker.
        sandbox.set_faults(fail_orders={"o-wait": 400})
        worker = Worker(dict(os.environ), "wprom").start()
        try:
            dead = 'vtex_relay_jobs{account="storea",state="dead"}'
            wait_for(
                lambda: set(query(dead).values()) == {1.0},
                timeout=60,
                what="Prometheus to see the dead job",
            )
        finally:
            worker.stop()
        assert len(list_dead(redis_client)) == 1
    finally:
        server.stop()
