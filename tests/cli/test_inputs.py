"""Any input, however broken, is one clear message and exit 2 (empty batch: 0), never a traceback.

Bytes that are not UTF-8, JSON too deep or with numbers too long to parse, bodies over
MAX_BODY_BYTES, malformed settings and credentials with a newline: through the CLI (in process,
where an exception would fail the test, and as a real process for its stderr), batch files, the
Python API and the worker. Each refusal checks that Redis stayed empty.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from config import get_settings
from tests.conftest import APP_TOKEN
from tests.processes import ROOT
from vtex_relay import enqueue_invoice, enqueue_tracking
from vtex_relay.cli.main import cli
from vtex_relay.errors import InvalidJob
from vtex_relay.produce.api import build_job

INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31",
    "invoiceNumber": "NF-1",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}
ITEM = {"id": "123", "price": 2499, "quantity": 1}
TRACKING = {"isDelivered": False, "events": []}
KINDS = [["invoice", "o-1"], ["tracking-number", "o-1", "NF-1"], ["tracking", "o-1", "NF-1"]]
NESTED = b"[" * 100_000 + b"]" * 100_000
HUGE = "9" * 5_000  # past Python's 4,300-digit limit for int()
LINE = {"kind": "tracking", "orderId": "o-1", "invoiceNumber": "NF-1", "body": TRACKING}


def run(*args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def run_process(*args: str, stdin: bytes = b"", **env: str) -> "subprocess.CompletedProcess[str]":
    command = [sys.executable, "-m", "vtex_relay", *args]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, input=stdin, capture_output=True, timeout=60
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def refused(result: Result, *expected: str) -> None:
    """Exit 2, the *expected* texts on stderr, nothing on stdout."""
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


class TestBody:
    @pytest.mark.parametrize("args", KINDS)
    def test_bytes_that_are_not_utf8(self, redis_client: redis.Redis, args: list[str]) -> None:
        result = run("enqueue", *args, "-", stdin=b'{"trackingNumber": "T-\xff1"}')
        refused(
            result,
            "<stdin>: the body is not UTF-8: cannot decode byte 0xff at position 22",
            "(invalid start byte); nothing was enqueued",
        )
        assert "nothing was enqueued" in result.stderr
        assert redis_client.dbsize() == 0

    def test_a_file_that_is_not_utf8(self, redis_client: redis.Redis, tmp_path: Path) -> None:
        path = tmp_path / "body.json"
        path.write_bytes(json.dumps(INVOICE).encode("utf-16"))
        refused(run("enqueue", "invoice", "o-1", str(path)), f"{path}: the body is not UTF-8")
        assert redis_client.dbsize() == 0

    def test_nesting_too_deep_to_parse(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "invoice", "o-1", stdin=NESTED)
        refused(result, "the body is not parsable: arrays or objects nested more deeply")
        assert redis_client.dbsize() == 0

    def test_a_number_too_long_to_parse(self, redis_client: redis.Redis) -> None:
        body = json.dumps(INVOICE).replace('"2499"', HUGE)
        result = run("enqueue", "invoice", "o-1", stdin=body)
        refused(result, "the body is not parsable: a number has more than 4,300 digits")
        assert redis_client.dbsize() == 0

    @pytest.mark.parametrize(
        ("stdin", "expected"),
        [
            (b"\xfe{}", "the body is not UTF-8"),
            (NESTED, "the body is not parsable"),
            (HUGE.encode(), "the body is not parsable"),
        ],
    )
    def test_a_real_process_prints_one_line(
        self, redis_client: redis.Redis, stdin: bytes, expected: str
    ) -> None:
        done = run_process("enqueue", "invoice", "o-1", "-", stdin=stdin)
        assert done.returncode == 2
        assert expected in done.stderr
        assert done.stderr.count("\n") == 1
        assert done.stdout == ""
        assert redis_client.dbsize() == 0

    def test_a_body_over_max_body_bytes_names_the_body(self, redis_client: redis.Redis) -> None:
        body = {**INVOICE, "embeddedInvoice": "x" * 1_048_576}  # an XML of 1 MiB
        result = run("enqueue", "invoice", "o-1", stdin=json.dumps(body))
        refused(result, "  body: is 1,048,", " bytes as JSON, more than MAX_BODY_BYTES (1,048,576)")
        assert redis_client.dbsize() == 0

    def test_a_body_too_large_to_read_is_not_read(self, redis_client: redis.Redis) -> None:
        body = {**INVOICE, "embeddedInvoice": "x" * 10_000_000}
        result = run("enqueue", "invoice", "o-1", stdin=json.dumps(body))
        refused(result, "  body: <stdin> is over 4,194,304 bytes, the most read")
        assert redis_client.dbsize() == 0

    def test_the_limit_is_the_utf8_size_of_compact_json(
        self, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
    ) -> None:
        settings_env.setenv("MAX_BODY_BYTES", "2000")
        rest = 2000 - len(json.dumps({**INVOICE, "embeddedInvoice": ""}, separators=(",", ":")))
        xml = "é" * (rest // 2) + "x" * (rest % 2)  # "é" is two bytes in UTF-8
        fitting = {**INVOICE, "embeddedInvoice": xml}
        assert len(json.dumps(fitting, ensure_ascii=False, separators=(",", ":")).encode()) == 2000
        pretty = json.dumps(fitting, indent=8)  # indentation and \u escapes do not count
        assert run("enqueue", "invoice", "o-1", stdin=pretty).exit_code == 0
        over = {**INVOICE, "embeddedInvoice": xml + "."}
        result = run("enqueue", "invoice", "o-2", stdin=json.dumps(over))
        refused(result, "body: is 2,001 bytes as JSON, more than MAX_BODY_BYTES (2,000)")


class TestBatch:
    def write(self, tmp_path: Path, *lines: bytes) -> str:
        path = tmp_path / "jobs.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        return str(path)

    def good(self, number: int) -> bytes:
        return json.dumps({**LINE, "orderId": f"o-{number}"}).encode()

    def test_each_unreadable_line_is_named(self, redis_client: redis.Redis, tmp_path: Path) -> None:
        deep = b'{"kind": "invoice", "orderId": "o-3", "body": ' + NESTED + b"}"
        path = self.write(
            tmp_path,
            self.good(1),
            self.good(2).replace(b"o-2", b"o-\xc3("),
            deep,
            self.good(4).replace(b"false", HUGE.encode()),
            self.good(5),
        )
        refused(
            run("enqueue", "batch", path),
            f"3 bad line(s) in {path}; nothing was enqueued:",
            "  line 2: line: not UTF-8: cannot decode byte 0xc3 at position 35",
            "  line 3: line: not parsable: arrays or objects nested more deeply",
            "  line 4: line: not parsable: a number has more than 4,300 digits",
        )
        assert redis_client.dbsize() == 0

    def test_a_real_process_reports_them(self, redis_client: redis.Redis, tmp_path: Path) -> None:
        path = self.write(tmp_path, b"\xff", NESTED, HUGE.encode())
        done = run_process("enqueue", "batch", path)
        assert done.returncode == 2
        assert "3 bad line(s)" in done.stderr
        assert "Traceback" not in done.stderr
        assert redis_client.dbsize() == 0

    def test_a_body_over_max_body_bytes(self, redis_client: redis.Redis) -> None:
        line = {**LINE, "kind": "invoice", "body": {**INVOICE, "embeddedInvoice": "x" * 2**20}}
        del line["invoiceNumber"]
        result = run("enqueue", "batch", "-", stdin=json.dumps(line))
        refused(result, "line 1: body: is 1,048,", "more than MAX_BODY_BYTES (1,048,576)")
        assert redis_client.dbsize() == 0

    def test_a_line_too_long_to_read_and_the_lines_after_it(
        self, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        settings_env.setenv("MAX_BODY_BYTES", "2000")  # lines of up to 8,000 bytes are read
        padded = self.good(1)
        padded += b" " * (8000 - len(padded))  # JSON allows the spaces; the line is at the limit
        path = self.write(tmp_path, padded, padded + b" ", b"\xff", b"x" * 100_000, self.good(5))
        refused(
            run("enqueue", "batch", path),
            "3 bad line(s)",
            "  line 2: line: over 8,000 bytes, the most read for a line (4 times MAX_BODY_BYTES)",
            "  line 3: line: not UTF-8",
            "  line 4: line: over 8,000 bytes",
        )
        assert "line 1:" not in run("enqueue", "batch", path).stderr
        assert redis_client.dbsize() == 0

    @pytest.mark.parametrize("content", [b"", b"\n", b"  \n\n\t\n"])
    def test_an_empty_batch_says_no_jobs(
        self, redis_client: redis.Redis, tmp_path: Path, content: bytes
    ) -> None:
        path = tmp_path / "empty.jsonl"
        path.write_bytes(content)
        result = run("enqueue", "batch", str(path))
        assert result.exit_code == 0
        assert result.stderr == f"vtex-relay: no jobs in {path}; nothing was enqueued\n"
        assert result.stdout == ""
        as_json = run("enqueue", "batch", str(path), "--json")
        assert as_json.exit_code == 0
        assert json.loads(as_json.stdout) == []
        assert redis_client.dbsize() == 0


class TestPythonApi:
    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({**INVOICE, "invoiceValue": 10**5000}, "body.invoiceValue"),
            ({**INVOICE, "items": [{**ITEM, "price": 10**5000}]}, "body.items.0.price"),
            ({**INVOICE, "items": [{**ITEM, "quantity": -(10**5000)}]}, "body.items.0.quantity"),
            ({**INVOICE, "embeddedInvoice": "x" * 2**20}, "body"),
        ],
    )
    def test_a_body_is_refused_by_validation(
        self, redis_client: redis.Redis, body: dict[str, object], named: str
    ) -> None:
        with pytest.raises(InvalidJob) as raised:
            enqueue_invoice("o-1", body)
        assert [error.location for error in raised.value.errors] == [named]
        assert redis_client.dbsize() == 0

    def test_an_invoice_value_out_of_range_says_what_it_must_be(self) -> None:
        with pytest.raises(InvalidJob, match="invoiceValue: must be a whole number of cents"):
            build_job("invoice", "o-1", {**INVOICE, "invoiceValue": 10**18})

    def test_a_huge_or_long_kind_is_named_briefly(self) -> None:
        with pytest.raises(InvalidJob, match=r"not a value of type int$"):
            build_job(10**5000, "o-1", TRACKING)
        with pytest.raises(InvalidJob) as raised:
            build_job("x" * 1_000_000, "o-1", TRACKING)
        assert len(str(raised.value)) < 200

    def test_the_api_applies_max_body_bytes(
        self, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
    ) -> None:
        settings_env.setenv("MAX_BODY_BYTES", "100")
        event = {"city": "Rio", "state": "RJ", "description": "x" * 100, "date": "2024-01-31"}
        with pytest.raises(InvalidJob, match=r"^body: is \d+ bytes as JSON, more than "):
            enqueue_tracking("o-1", "NF-1", {**TRACKING, "events": [event]})
        assert redis_client.dbsize() == 0


class TestSettings:
    @pytest.mark.parametrize(
        ("rates", "message"),
        [
            ("{mystore: 50}", "not JSON: Expecting property name enclosed in double quotes"),
            ('[{"rate": 1}]', 'must be a JSON object such as {"mystore": {"rate": 50, '),
            ('{"mystore": 50}', "mystore: Input should be a valid dictionary"),
            ('{"mystore": {"rate": -1}}', "mystore.rate: Input should be greater than or equal"),
            ('{"my.store": {"rate": 1}}', "my.store.[key]: must be a VTEX account name"),
            ("[" * 100_000, "not parsable: arrays or objects nested more deeply"),
            ('{"mystore": {"rate": ' + HUGE + "}}", "not parsable: a number has more than"),
        ],
    )
    def test_malformed_account_rates_are_one_line(
        self, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch, rates: str, message: str
    ) -> None:
        settings_env.setenv("VTEX_ACCOUNT_RATES", rates)
        result = run("enqueue", "tracking", "o-1", "NF-1", stdin=json.dumps(TRACKING))
        refused(result, f"vtex-relay: invalid setting VTEX_ACCOUNT_RATES: {message}")
        assert result.stderr.count("\n") == 1
        assert redis_client.dbsize() == 0

    def test_account_rates_keep_working(self, settings_env: pytest.MonkeyPatch) -> None:
        settings_env.setenv("VTEX_ACCOUNT_RATES", '{"mystore": {"rate": 50, "burst": 5}}')
        assert get_settings().rate_for("mystore").rate == 50
        assert get_settings().rate_for("mystore").burst == 5
        get_settings.cache_clear()
        settings_env.setenv("VTEX_ACCOUNT_RATES", "")
        assert get_settings().vtex_account_rates == {}

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("VTEX_APP_TOKEN", APP_TOKEN + "\n"),
            ("VTEX_APP_TOKEN", APP_TOKEN + "\r\n"),
            ("VTEX_APP_TOKEN", " " + APP_TOKEN),
            ("VTEX_APP_TOKEN", APP_TOKEN[:5] + "\x1b" + APP_TOKEN[5:]),
            ("VTEX_APP_TOKEN", APP_TOKEN + "\u00a0"),
            ("VTEX_APP_KEY", APP_TOKEN + "\t"),
        ],
    )
    def test_a_credential_with_whitespace_or_control_characters(
        self, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch, name: str, value: str
    ) -> None:
        settings_env.setenv(name, value)
        result = run("enqueue", "invoice", "o-1", stdin=json.dumps(INVOICE))
        refused(result, f"vtex-relay: invalid setting {name}: has ")
        assert result.stderr.count("\n") == 1
        assert APP_TOKEN[:12] not in result.stderr
        assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("VTEX_APP_TOKEN", APP_TOKEN + "\n"), ("VTEX_ACCOUNT_RATES", '{"mystore": {"rate": 5}')],
)
def test_the_worker_and_the_cli_refuse_to_start(
    redis_client: redis.Redis, name: str, value: str
) -> None:
    """The real programs: one line naming the variable, never the token, no traceback."""
    env = {**os.environ, name: value}
    worker = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "threads"]
    done = subprocess.run(worker, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    cli_done = run_process("enqueue", "invoice", "o-1", stdin=json.dumps(INVOICE).encode(), **env)
    assert done.returncode != 0
    assert cli_done.returncode == 2
    for output in (done.stdout + done.stderr, cli_done.stdout + cli_done.stderr):
        assert output.strip().count("\n") == 0, output
        assert f"vtex-relay: invalid setting {name}: " in output
        assert APP_TOKEN not in output
        assert "Traceback" not in output
    assert redis_client.dbsize() == 0


def test_serve_with_a_token_file_it_cannot_read_says_so_in_one_line(tmp_path: Path) -> None:
    accounts = {"mystore": {"appKey": "k", "appTokenFile": str(tmp_path / "missing")}}
    done = run_process(
        "serve", "--port", "0", VTEX_ACCOUNTS=json.dumps(accounts), VTEX_ACCOUNT="mystore"
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "account 'mystore': the file" in done.stderr
    assert "cannot be read (No such file or directory)" in done.stderr
