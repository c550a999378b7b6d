"""Authentication: the account's own key pair or nothing (401, nothing enqueued), and no token
in any answer or log line. Per-account credentials are served by an intake run in this process
with settings of two accounts, over real HTTP."""

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from tests.conftest import APP_KEY, APP_TOKEN
from tests.harness import Intake
from tests.intake_support import INVOICE, ORDER, post_invoice, vtex_error
from tests.processes import free_port, wait_for
from vtex_relay.errors import UnknownAccount
from vtex_relay.intake.app import run
from vtex_relay.intake.auth import UNAUTHORISED
from vtex_relay.settings import Credentials, Settings

OWN = {
    "storea": Credentials("key-a", SecretStr("token-a-secret")),
    "storeb": Credentials("key-b", SecretStr("token-b-secret")),
}


class TwoAccounts(Settings):
    """Settings with two accounts of their own credentials (the accounts branch's API)."""

    def credentials(self, account: str) -> Credentials:
        if account not in OWN:
            raise UnknownAccount(account)
        return OWN[account]

    def knows(self, account: str) -> bool:
        return account in OWN

    def tokens(self) -> list[str]:
        return [c.app_token.get_secret_value() for c in OWN.values()]


@pytest.fixture(scope="module")
def two_accounts(redis_server: object) -> Iterator[str]:
    """An intake in a thread of this process, on a free port, for two accounts."""
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(run(TwoAccounts(), "127.0.0.1", port, stop),)
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), what="the in-process intake")
    yield url
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/relay/openapi.json").status_code == 200
    except httpx.TransportError:
        return False


def pair(key: str, token: str) -> dict[str, str]:
    return {"X-VTEX-API-AppKey": key, "X-VTEX-API-AppToken": token}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-VTEX-API-AppKey": APP_KEY},
        pair(APP_KEY, "wrong"),
        pair("wrong", APP_TOKEN),
        pair(APP_KEY, APP_TOKEN + "x"),
        {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": "é" * 8},
    ],
    ids=["none", "no-token", "wrong-token", "wrong-key", "longer-token", "non-ascii"],
)
def test_missing_or_wrong_credentials_are_401(
    intake: str, redis_client: redis.Redis, intake_process: Intake, headers: dict[str, str]
) -> None:
    # Sent as UTF-8 bytes, as a misconfigured client might.
    headers = {name: value.encode() for name, value in headers.items()}  # type: ignore[misc]
    answer = httpx.post(f"{intake}{ORDER}/o-1/invoice", json=INVOICE, headers=headers)
    assert "Unauthorized" in vtex_error(answer, 401)
    for path in ("/relay/orders/o-1", "/relay/jobs/j-1", f"{ORDER}/o-1"):
        vtex_error(httpx.get(intake + path, headers=headers), 401)
    batch = httpx.post(f"{intake}/relay/batch", content=b"{}\n", headers=headers)
    vtex_error(batch, 401)
    assert redis_client.dbsize() == 0
    assert APP_TOKEN not in intake_process.log()


def test_the_health_and_openapi_need_no_credentials(intake: str) -> None:
    assert httpx.get(intake + "/relay/health").json() == {"status": "ok"}
    assert httpx.get(intake + "/relay/openapi.json").json()["openapi"].startswith("3.")


def test_each_account_its_own_credentials(two_accounts: str, redis_client: redis.Redis) -> None:
    key_a, token_a = OWN["storea"]
    own = httpx.Client(base_url=two_accounts, headers=pair(key_a, token_a.get_secret_value()))
    answer = post_invoice(own, "o-1", INVOICE, params={"an": "storea"})
    assert answer.status_code == 200, answer.text
    size = redis_client.dbsize()
    other = post_invoice(own, "o-2", INVOICE, params={"an": "storeb"})  # a's pair, for b
    assert "Unauthorized" in vtex_error(other, 401)
    assert "token-a-secret" not in other.text
    assert redis_client.dbsize() == size


def test_an_unknown_account_is_401(two_accounts: str, redis_client: redis.Redis) -> None:
    key_a, token_a = OWN["storea"]
    headers = pair(key_a, token_a.get_secret_value())
    answer = httpx.post(f"{two_accounts}/nostore{ORDER}/o-1/invoice", json=INVOICE, headers=headers)
    assert vtex_error(answer, 401) == UNAUTHORISED  # as a wrong key pair: it names nothing
    assert redis_client.dbsize() == 0
