"""The published contract is the enforced one: Schemathesis against a real intake.

``GET /relay/openapi.json`` is generated from the models and the route table
(``vtex_relay.intake.openapi``). Schemathesis (its CLI, every check) loads it from a running
intake, on the test Redis and the sandbox, and sends 200 generated requests per operation
(valid and invalid ones), its coverage phase's edge cases and stateful sequences: any server
error, any request the document allows that is refused, any request it does not allow that
is accepted, any status it does not list and any answer that does not match it fail the test.
The settings (seed, examples, hooks) are in ``schemathesis.toml`` beside this file: ~40 s on
two cores.
"""

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from tests.conftest import APP_KEY, APP_TOKEN
from tests.processes import ROOT
from vtex_relay.models import parse_json
from vtex_relay.sandbox import SandboxControl
from vtex_relay.values import ISO_PATTERN, NOT_BLANK_PATTERN

CONFIG = Path(__file__).with_name("schemathesis.toml")
SUMMARY = re.compile(r"^\s*(\d+) generated, (\d+) passed(, \d+ skipped)?$", re.MULTILINE)
KEYS = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}


def schemathesis(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``schemathesis run URL/relay/openapi.json --checks all`` with the test account's keys."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"),
        *(f"{url}/relay/openapi.json", "--checks", "all", "--no-color"),
        *(option for name, value in KEYS.items() for option in ("--header", f"{name}: {value}")),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # for the hooks module, tests.intake...
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_intake_does_what_its_openapi_document_says(
    intake: str, sandbox: SandboxControl, tmp_path: Path
) -> None:
    run = schemathesis(intake, tmp_path)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    found = SUMMARY.search(report)  # "2579 generated, 2579 passed, 18 skipped": none failed
    assert found is not None, report[-5_000:]
    generated, passed = int(found.group(1)), int(found.group(2))
    assert generated == passed > 1_000, found.group(0)


def test_the_document_states_the_blank_rule_exactly() -> None:
    """A text field must have a character that ``str.strip()`` keeps: one not ``isspace()``."""
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    outside = {chr(c) for c in range(0x3100) if not re.fullmatch(NOT_BLANK_PATTERN, chr(c))}
    assert outside == spaces


def test_the_document_states_the_calendar_exactly() -> None:
    """The date pattern takes every real day (leap years too) and nothing else."""
    pattern = re.compile(ISO_PATTERN)
    for year in (1, 4, 100, 1900, 1999, 2000, 2023, 2024, 2100, 2400, 9999):
        days = range(date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal() + 1)
        real = {date.fromordinal(day).isoformat() for day in days}
        candidates = {f"{year:04d}-{m:02d}-{d:02d}" for m in range(14) for d in range(33)}
        assert {c for c in candidates if pattern.fullmatch(c)} == real, year
    assert not pattern.fullmatch("0000-01-01")


def test_a_json_number_is_read_as_json_schema_reads_it() -> None:
    """``integer`` in the document takes 2927.0 and 1e3 (JSON does not tell them from 2927 and
    1000 but by their spelling): so does the intake, exactly; 2.5 stays a number."""
    numbers = parse_json(b"[2927.0, 1e3, -0.0, 123456789012345678.0, 2.5]")
    assert isinstance(numbers, list)
    assert numbers == [2927, 1000, 0, 123456789012345678, 2.5]
    assert [type(n) for n in numbers] == [int, int, int, int, float]
