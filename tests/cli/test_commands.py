"""The CLI's contract: ids on stdout, one clear message on stderr, exit codes, all-or-nothing.

Each refusal is checked against Redis itself: the queue must stay empty.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.processes import ROOT, free_port, read_message, text
from vtex_relay.cli.main import cli
from vtex_relay.store.keys import OrderRef, account
from vtex_relay.store.messages import QUEUE

EXAMPLES = ROOT / "examples"
INVOICE = json.loads((EXAMPLES / "invoice.json").read_text())
TRACKING_NUMBER = json.loads((EXAMPLES / "tracking-number.json").read_text())


# The guide's invoice, enqueued by the console script in a process of its own.
ENQUEUE_EXAMPLE = [
    sys.executable,
    "-m",
    "vtex_relay",
    "enqueue",
    "invoice",
    "o-1",
    str(EXAMPLES / "invoice.json"),
]


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    """The task messages waiting in the queue, oldest first, as (task name, kwargs)."""
    messages = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):  # kombu LPUSHes, workers BRPOP
        task, kwargs = read_message(raw)
        messages.append({"task": task, **kwargs})
    return messages


class TestEnqueueOne:
    def test_invoice_prints_the_job_id_and_queues_the_validated_body(
        self, redis_client: redis.Redis
    ) -> None:
        result = run("enqueue", "invoice", "1172452900788-01", str(EXAMPLES / "invoice.json"))
        assert result.exit_code == 0, result.output
        job_id = result.stdout.strip()
        [message] = queued(redis_client)
        assert message["task"] == "invoice"
        assert message["job_id"] == job_id
        assert message["account"] == "teststore"
        assert message["order_id"] == "1172452900788-01"
        assert message["invoice_number"] == "9999"
        expected = {k: v for k, v in INVOICE.items() if k != "courier"}  # null courier is not spec
        assert message["body"] == expected

    def test_body_from_stdin_and_json_output(self, redis_client: redis.Redis) -> None:
        result = run(
            "enqueue",
            "tracking-number",
            "o-1",
            "9999",
            "-",
            "--account",
            "otherstore",
            "--json",
            stdin=json.dumps(TRACKING_NUMBER),
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["kind"] == "tracking-number"
        assert summary["account"] == "otherstore"
        assert summary["invoiceNumber"] == "9999"
        [message] = queued(redis_client)
        assert message["task"] == "tracking-number"
        assert message["job_id"] == summary["jobId"]
        assert message["body"] == {**TRACKING_NUMBER, "dispatchedDate": None}

    def test_console_script_runs(self, redis_client: redis.Redis) -> None:
        command = [
            sys.executable,
            "-m",
            "vtex_relay",
            "enqueue",
            "tracking",
            "o-1",
            "9999",
            str(EXAMPLES / "tracking.json"),
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert [m["job_id"] for m in queued(redis_client)] == [done.stdout.strip()]


class TestRefusals:
    @pytest.mark.parametrize(
        ("args", "body", "named"),
        [
            (["tracking-number", "o-1", "9999"], {"courier": "x"}, "trackingNumber"),
            (
                ["invoice", "o-1"],
                {**INVOICE, "items": [{"id": "1", "price": 10.5, "quantity": 1}]},
                "body.items.0.price",
            ),
            (["invoice", "../x"], INVOICE, "orderId"),
            (["invoice", "o-1", "-", "--account", "evil.com/x"], INVOICE, "account"),
            (["tracking", "o-1", "12/3"], {"isDelivered": False, "events": []}, "invoiceNumber"),
            (["invoice", "o-1"], {**INVOICE, "invoiceValue": "100,00"}, "invoiceValue"),
        ],
    )
    def test_bad_input_is_named_and_nothing_is_queued(
        self, redis_client: redis.Redis, args: list[str], body: object, named: str
    ) -> None:
        cmd = ["enqueue", *args] + (["-"] if "-" not in args else [])
        result = run(*cmd, stdin=json.dumps(body))
        assert result.exit_code == 2
        assert named in result.stderr
        assert "nothing was enqueued" in result.stderr
        assert result.stdout == ""
        assert redis_client.keys("*") == []

    def test_every_bad_field_is_named(self, redis_client: redis.Redis) -> None:
        body = {**INVOICE, "type": "Sale", "invoiceValue": 0, "items": [{"id": "1"}]}
        result = run("enqueue", "invoice", "../x", "-", "--account", "a.b", stdin=json.dumps(body))
        assert result.exit_code == 2
        for field in (
            "orderId",
            "account",
            "body.type",
            "body.invoiceValue",
            "body.items.0.price",
            "body.items.0.quantity",
        ):
            assert field in result.stderr
        assert redis_client.keys("*") == []

    def test_a_body_that_is_not_json(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "invoice", "o-1", "-", stdin="{not json")
        assert result.exit_code == 2
        assert "not JSON" in result.stderr
        assert redis_client.keys("*") == []

    def test_unreachable_redis_fails_loudly(self) -> None:
        port = free_port()
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        command = ENQUEUE_EXAMPLE
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60
        )
        assert done.returncode == 1
        assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""

    def test_invalid_setting_is_one_line_naming_the_variable(self) -> None:
        env = {**os.environ, "VTEX_TIMEOUT": "soon"}
        command = ENQUEUE_EXAMPLE
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0
        assert "VTEX_TIMEOUT" in done.stderr


class TestBatch:
    def lines(self, count: int) -> list[str]:
        return [
            json.dumps(
                {
                    "kind": "tracking",
                    "orderId": f"o-{i}",
                    "invoiceNumber": "9999",
                    "body": {"isDelivered": False, "events": []},
                }
            )
            for i in range(count)
        ]

    def test_lines_are_queued_in_order(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "batch", "-", stdin="\n".join(self.lines(50)) + "\n")
        assert result.exit_code == 0, result.output
        ids = result.stdout.split()
        messages = queued(redis_client)
        # The account's window (DISPATCH_WINDOW, 32) has messages; the rest wait in its line.
        line = [
            text(m).split()[1] for m in redis_client.lrange(account("teststore", "line"), 0, -1)
        ]
        assert [m["job_id"] for m in messages] + line == ids
        assert [m["order_id"] for m in messages] == [f"o-{i}" for i in range(32)]

    def test_the_example_batch_file(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "batch", str(EXAMPLES / "batch.jsonl"), "--json")
        assert result.exit_code == 0, result.output
        jobs = json.loads(result.stdout)
        assert [job["kind"] for job in jobs] == ["invoice", "tracking-number", "tracking"]
        # One order: only its first job is on the Celery queue; the others wait behind it.
        assert [m["task"] for m in queued(redis_client)] == ["invoice"]
        seqs = redis_client.hgetall(OrderRef("teststore", "1172452900788-01").key("seqs"))
        assert [text(seqs[str(n).encode()]) for n in (1, 2, 3)] == [j["jobId"] for j in jobs]

    def test_one_bad_line_among_good_ones_enqueues_nothing(
        self, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        lines = self.lines(10)
        lines[3] = json.dumps({"kind": "refund", "orderId": "o-3", "body": {}})
        lines[7] = lines[7].replace('"isDelivered": false', '"isDelivered": "maybe"')
        path = tmp_path / "jobs.jsonl"
        path.write_text("\n".join(lines) + "\n")
        result = run("enqueue", "batch", str(path))
        assert result.exit_code == 2
        assert "2 bad line(s)" in result.stderr
        assert "line 4: kind" in result.stderr
        assert "line 8: body.isDelivered" in result.stderr
        assert redis_client.keys("*") == []

    def test_many_lines(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "batch", "-", stdin="\n".join(self.lines(20_000)))
        assert result.exit_code == 0
        # 20,000 orders: each job is its order's head, so each has its turn: a message, or its
        # place in the account's line (beyond its dispatch window)
        in_line = redis_client.llen(account("teststore", "line"))
        assert (redis_client.llen(QUEUE), in_line) == (32, 20_000 - 32)
