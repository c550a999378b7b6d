"""deploy/: the alert rules and scrape configuration pass promtool (and the rules' own unit
tests: each alert fires on a series that should fire it, none on a quiet relay); the systemd
units pass ``systemd-analyze verify``, with the usual hardening and a stop timeout longer than
a try."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import ROOT
from vtex_relay.settings import Settings

PROMETHEUS = ROOT / "deploy" / "prometheus"
SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = ["vtex-relay-worker@.service", "vtex-relay-intake.service", "vtex-relay-metrics.service"]


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (make test installs it with apt-get where it can)")
    return found


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "command",
    [
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts.test.yml"),
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool(command: tuple[str, ...]) -> None:
    done = run(tool("promtool"), *command, cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_has_a_runbook_naming_a_command() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    alerts = text.count("- alert: ")
    assert alerts == 8
    assert text.count("runbook: ") == alerts
    tests = (PROMETHEUS / "alerts.test.yml").read_text()
    for name in [line.split(": ")[1] for line in text.splitlines() if "- alert: " in line]:
        assert f"alertname: {name}\n" in tests  # fired by the trouble test
        assert f"alertname: {name}, exp_alerts: []" in tests  # quiet on a quiet relay


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    for unit in UNITS:  # the units point at /opt/vtex-relay: here, at this checkout
        text = (SYSTEMD / unit).read_text().replace("/opt/vtex-relay", str(ROOT))
        (tmp_path / unit).write_text(text)
    names = [f"./{u.replace('@.', '@1.')}" for u in UNITS]
    done = run(analyze, "verify", "--man=no", *names, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # a warning is a mistake too


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened_and_outlast_a_try(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / unit).read_text())
    service = parser["Service"]
    assert service["User"] == "vtex-relay"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["Restart"] == "on-failure"
    longest_try = 3 * Settings.model_fields["vtex_timeout"].default
    if "worker" in unit or "intake" in unit:
        assert float(service["TimeoutStopSec"]) > longest_try
