"""Each account's calls carry that account's credentials, end to end: real Redis, real worker
processes, a sandbox over HTTP that accepts each account's own key and token only.

Three accounts, their tokens given three ways: ``alpha`` in the accounts file itself, ``beta``
by environment variable, ``gamma`` by a secret file. Every test asserts on what the sandbox
recorded for each request (the app key it carried; a wrong token would have been a 401).
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from click.testing import CliRunner

from tests.conftest import APP_KEY, APP_TOKEN
from tests.harness import Sandbox
from tests.processes import ROOT, Worker, wait_for
from tests.system.test_secrets import redis_contents, running_flower
from vtex_relay import enqueue_invoice, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.sandbox import RecordedRequest, SandboxControl

KEYS = {"alpha": "key-alpha-1111", "beta": "key-beta-2222", "gamma": "key-gamma-3333"}
TOKENS = {
    "alpha": "TOKEN-alpha-in-the-file-never-shown-a1",
    "beta": "TOKEN-beta-by-variable-never-shown-b2",
    "gamma": "TOKEN-gamma-by-file-never-shown-c3",
}
INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31T18:25:43-05:00",
    "invoiceNumber": "NF-1",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}


@dataclass(frozen=True)
class Setup:
    """The accounts files (all three; without gamma), the environment and the sandbox."""

    every_account: Path
    without_gamma: Path
    env: dict[str, str]
    sandbox: SandboxControl
    url: str


def accounts_toml(directory: Path, names: list[str]) -> str:
    sources = {
        "alpha": f'appToken = "{TOKENS["alpha"]}"',
        "beta": 'appTokenEnv = "BETA_APP_TOKEN"',
        "gamma": f'appTokenFile = "{directory / "gamma-token"}"',
    }
    return "".join(
        f'[accounts.{name}]\nappKey = "{KEYS[name]}"\n{sources[name]}\n\n' for name in names
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("accounts")
    (directory / "gamma-token").write_text(TOKENS["gamma"] + "\n")  # as a Docker secret
    every_account = directory / "accounts.toml"
    every_account.write_text(accounts_toml(directory, ["alpha", "beta", "gamma"]))
    without_gamma = directory / "accounts-without-gamma.toml"
    without_gamma.write_text(accounts_toml(directory, ["alpha", "beta"]))
    env = {"BETA_APP_TOKEN": TOKENS["beta"], "SANDBOX_APP_TOKEN": APP_TOKEN}
    process = Sandbox(
        *("--accounts-file", str(every_account), "--app-key", APP_KEY, "--strict-schema"),
        env={**os.environ, **env},
        cwd=ROOT,
    )
    process.start()
    control = SandboxControl(process.url)
    env |= {
        "VTEX_ACCOUNTS_FILE": str(every_account),
        "VTEX_BASE_URL": process.url + "/{account}",
        "VTEX_ACCOUNT": "alpha",
    }
    try:
        yield Setup(every_account, without_gamma, env, control, process.url)
    finally:
        control.close()
        process.stop()


@pytest.fixture
def accounts(setup: Setup, settings_env: pytest.MonkeyPatch, redis_client: redis.Redis) -> Setup:
    """This process (the producer) configured with the three accounts; an empty sandbox."""
    for name, value in setup.env.items():
        settings_env.setenv(name, value)
    setup.sandbox.reset()
    return setup


def start_worker(name: str, **changes: str) -> Worker:
    return Worker({**os.environ, **changes}, name, concurrency=4).start()


def answered(sandbox: SandboxControl, count: int) -> list[RecordedRequest]:
    def enough(control: SandboxControl) -> list[RecordedRequest] | None:
        got = [r for r in control.requests() if r.status is not None]
        return got if len(got) >= count else None

    return sandbox.wait_for(enough, timeout=20)


def test_each_account_is_called_with_its_own_credentials(accounts: Setup) -> None:
    worker = start_worker("w-accounts")
    try:
        for account in ("alpha", "beta", "gamma"):
            for n in range(3):
                order = f"o-{account}-{n}"
                enqueue_invoice(order, INVOICE, account=account)
                enqueue_tracking_number(order, "NF-1", {"trackingNumber": "T-1"}, account=account)
        requests = answered(accounts.sandbox, 18)
    finally:
        worker.stop()
        worker.remove_log()
    assert len(requests) == 18
    for request in requests:
        assert request.status == 200, request
        assert request.app_key == KEYS[request.account]
        assert request.order_id is not None
        assert request.order_id.startswith(f"o-{request.account}-")
    assert {r.account for r in requests} == {"alpha", "beta", "gamma"}


def test_the_sandbox_refuses_another_account_s_credentials(accounts: Setup) -> None:
    path = "/api/oms/pvt/orders/o-x"

    def status(account: str, key: str, token: str) -> int:
        headers = {"X-VTEX-API-AppKey": key, "X-VTEX-API-AppToken": token}
        return httpx.get(f"{accounts.url}/{account}{path}", headers=headers).status_code

    assert status("alpha", KEYS["alpha"], TOKENS["alpha"]) == 200
    assert status("alpha", KEYS["beta"], TOKENS["beta"]) == 401
    assert status("alpha", KEYS["alpha"], TOKENS["beta"]) == 401
    assert status("alpha", APP_KEY, APP_TOKEN) == 401  # not even the global pair
    assert status("other", APP_KEY, APP_TOKEN) == 200  # an account without its own
    assert [r.app_key for r in accounts.sandbox.requests()] == [
        KEYS["alpha"],
        KEYS["beta"],
        KEYS["alpha"],
        APP_KEY,
        APP_KEY,
    ]


def test_a_removed_account_s_job_is_dead_lettered_unsent(accounts: Setup) -> None:
    removed = enqueue_invoice("o-removed", INVOICE, account="gamma")
    kept = enqueue_invoice("o-kept", INVOICE, account="beta")
    worker = start_worker("w-removed", VTEX_ACCOUNTS_FILE=str(accounts.without_gamma))
    try:
        line = worker.wait_for_log(f"(job {removed}): not sent:")
        worker.wait_for_log(f"(job {kept}): delivered")
    finally:
        worker.stop()
        worker.remove_log()
    assert "account 'gamma' is not configured" in line
    shown = CliRunner().invoke(cli, ["dlq", "show", removed])
    assert shown.exit_code == 0, shown.output
    assert "account 'gamma' is not configured" in shown.stdout
    assert accounts.sandbox.requests(account="gamma") == []
    [request] = accounts.sandbox.requests(account="beta")
    assert (request.status, request.app_key) == (200, KEYS["beta"])


def test_no_account_s_token_is_anywhere(accounts: Setup, redis_client: redis.Redis) -> None:
    worker = start_worker("w-secrets")
    try:
        with running_flower() as flower:
            jobs = [enqueue_invoice(f"o-s-{a}", INVOICE, account=a) for a in KEYS]
            # Refused by VTEX (no such invoice): an error text and a dead job are recorded.
            refused = enqueue_tracking_number(
                "o-s-none", "NF-9", {"trackingNumber": "T-9"}, account="gamma"
            )
            for job in [*jobs, refused]:
                worker.wait_for_log(f"(job {job})")

            def flower_shows() -> str | None:
                tasks = flower.get("/api/tasks").text
                return tasks if all(job in tasks for job in [*jobs, refused]) else None

            tasks = wait_for(flower_shows, timeout=20, what="Flower to show every job")
            pages = [flower.get(f"/task/{job}").text for job in [*jobs, refused]]
            infos = [flower.get(f"/api/task/info/{job}").text for job in [*jobs, refused]]
            assert "dead: HTTP 404" in infos[-1]
    finally:
        worker.stop()
    log = worker.log()
    worker.remove_log()
    runner = CliRunner()
    outputs = [
        runner.invoke(cli, args).output
        for args in (
            ["order", "o-s-gamma", "--account", "gamma"],
            ["order", "o-s-none", "--account", "gamma", "--json"],
            ["dlq", "list"],
            ["dlq", "list", "--json"],
            ["dlq", "show", refused],
        )
    ]
    assert refused in outputs[2]
    everything = redis_contents(redis_client)
    assert all(job in everything for job in jobs)
    assert all(job in log for job in jobs)
    requests = accounts.sandbox.requests()
    assert {r.app_key for r in requests} == set(KEYS.values())  # each account really called
    shown = [everything, log, tasks, *pages, *infos, *outputs]
    shown.append(json.dumps([r.body for r in requests]))
    for token in [*TOKENS.values(), APP_TOKEN]:
        for text in shown:
            assert token not in text
