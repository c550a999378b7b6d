"""The account of a request, from its host name, on a relay whose own host name looks like
VTEX's (``relay.lojaexemplo.com.br``): the relay's own name never names an account, VTEX's
form does only with a VTEX environment, and ``{account}.`` + the relay's name does."""

import os
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.harness import Intake
from tests.intake_support import INVOICE, ORDER, client, jobs_of, vtex_error
from tests.processes import ROOT
from vtex_relay.intake.hosts import account_of
from vtex_relay.settings import Settings

RELAY = "relay.lojaexemplo.com.br"


@pytest.fixture(scope="module")
def relay_host(redis_server: object) -> Iterator[str]:
    env = {**os.environ, "INTAKE_HOST": RELAY, "INTAKE_HOSTS": "api.lojaexemplo.com.br, b.test"}
    process = Intake(env=env, cwd=ROOT).start()
    yield process.url
    process.stop()


@pytest.mark.parametrize(
    ("path", "host", "account"),
    [
        (ORDER, RELAY, "teststore"),  # VTEX_ACCOUNT
        (f"/mystore{ORDER}", RELAY, "mystore"),  # the README's form on the relay's host
        (ORDER, f"{RELAY}:443", "teststore"),
        (ORDER, "RELAY.LojaExemplo.com.br.", "teststore"),
        (ORDER, "api.lojaexemplo.com.br", "teststore"),  # INTAKE_HOSTS
        (ORDER, f"mystore.{RELAY}", "mystore"),
        (ORDER, "mystore.api.lojaexemplo.com.br", "mystore"),
        (ORDER, "mystore.vtexcommercestable.com.br", "mystore"),
        (ORDER, "mystore.vtexcommercebeta.com.br", "mystore"),
        (ORDER, "www.lojaexemplo.com.br", "teststore"),  # not a VTEX environment
    ],
)
def test_the_relay_s_own_host_names_no_account(
    relay_host: str, redis_client: redis.Redis, path: str, host: str, account: str
) -> None:
    with client(relay_host) as http:
        answer = http.post(f"{path}/o-h/invoice", json=INVOICE, headers={"Host": host})
    assert answer.status_code == 200, answer.text
    assert jobs_of(redis_client, account, "o-h") == [answer.json()["receipt"]]
    assert redis_client.keys("vr:{relay:*") == []
    assert redis_client.keys("vr:{www:*") == []


def test_a_host_and_a_path_that_disagree_are_still_refused(
    relay_host: str, redis_client: redis.Redis
) -> None:
    with client(relay_host) as http:
        answer = http.post(
            f"/otherstore{ORDER}/o-h/invoice", json=INVOICE, headers={"Host": f"mystore.{RELAY}"}
        )
    assert "named differently" in vtex_error(answer, 400)
    assert redis_client.dbsize() == 0


def test_intake_hosts_takes_a_list() -> None:
    assert Settings(intake_hosts='["A.test.", "b.test"]').relay_hosts() == {"a.test", "b.test"}
    settings = Settings(intake_host="relay.test", intake_hosts="x.test,y.test")
    assert settings.relay_hosts() == {"relay.test", "x.test", "y.test"}
    assert account_of(settings, None, [], "y.test") == settings.vtex_account


def test_an_unknown_account_and_a_wrong_key_get_the_same_401(redis_client: redis.Redis) -> None:
    """Nobody can list the accounts a relay serves by trying names (settings of two accounts
    with their own keys: only those are served)."""
    env = {
        **os.environ,
        "VTEX_ACCOUNTS": '{"storea": {"appKey": "key-a", "appToken": "token-a"}, '
        '"storeb": {"appKey": "key-b", "appToken": "token-b"}}',
        "VTEX_ACCOUNT": "storea",
    }
    process = Intake(env=env, cwd=ROOT).start()
    try:
        pair = {"X-VTEX-API-AppKey": "key-a", "X-VTEX-API-AppToken": "wrong"}
        texts = []
        for account in ("storea", "nostore", "storeb"):
            answer = httpx.post(
                f"{process.url}/{account}{ORDER}/o-1/invoice", json=INVOICE, headers=pair
            )
            texts.append(vtex_error(answer, 401))
            assert account not in answer.text
        assert len(set(texts)) == 1
        assert redis_client.dbsize() == 0
        log = process.log()
        assert "account nostore is not served" in log  # the reason, for the operator
        assert "wrong" not in log
    finally:
        process.stop()
