"""One VTEX account is one name, whatever its case: one order namespace, one rate, one setting.

Host names are case-insensitive, so ``MYSTORE`` and ``mystore`` reach the same VTEX store:
every boundary keeps the account in lower case, and Redis is checked for the keys it got.
"""

import json

import pytest
import redis
from click.testing import CliRunner, Result

from config import Settings
from tests.processes import text
from vtex_relay import enqueue_invoice
from vtex_relay.cli.main import cli
from vtex_relay.errors import InvoiceConflict
from vtex_relay.store import keys
from vtex_relay.store.keys import OrderRef

INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31",
    "invoiceNumber": "NF-1",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}
TRACKING = {"isDelivered": False, "events": []}


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def _tag_of(account: str, order_id: str) -> str:
    """How an order's keys start: ``vr:{account:orderId}``."""
    return OrderRef(account, order_id).key("order").removesuffix(":order")


def order_keys(client: redis.Redis) -> set[str]:
    """The ``{account:orderId}`` tags of every order key in Redis."""
    return {text(key).split("}")[0] + "}" for key in client.scan_iter(keys.order("*", "order"))}


def test_the_api_refuses_a_second_invoice_under_another_case(redis_client: redis.Redis) -> None:
    first = enqueue_invoice("o-case", INVOICE, account="MYSTORE")
    with pytest.raises(InvoiceConflict) as refused:
        enqueue_invoice("o-case", {**INVOICE, "invoiceNumber": "NF-2"}, account="mystore")
    assert refused.value.job_id == first
    assert enqueue_invoice("o-case", INVOICE, account="MyStore") == first  # a duplicate
    assert order_keys(redis_client) == {_tag_of("mystore", "o-case")}


def test_the_cli_account_lands_in_the_lower_case_order(redis_client: redis.Redis) -> None:
    args = ["enqueue", "invoice", "o-cli", "-", "--account", "MyStore", "--json"]
    result = run(*args, stdin=json.dumps(INVOICE))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["account"] == "mystore"
    seqs = redis_client.hgetall(OrderRef("mystore", "o-cli").key("seqs"))
    assert [text(v) for v in seqs.values()] == [summary["jobId"]]
    assert order_keys(redis_client) == {_tag_of("mystore", "o-cli")}

    other = {**INVOICE, "invoiceNumber": "NF-2"}
    again = run("enqueue", "invoice", "o-cli", "-", "--account", "MYSTORE", stdin=json.dumps(other))
    assert again.exit_code == 2
    assert f"already has invoice NF-1 (job {summary['jobId']}" in again.stderr

    shown = run("order", "o-cli", "--account", "MYSTORE", "--json")
    assert shown.exit_code == 0, shown.output
    order = json.loads(shown.stdout)
    assert order["account"] == "mystore"
    assert [job["jobId"] for job in order["jobs"]] == [summary["jobId"]]


def test_a_batch_line_account_is_lower_cased(redis_client: redis.Redis) -> None:
    line = {"kind": "tracking", "orderId": "o-b", "invoiceNumber": "NF-1"}
    lines = [
        {**line, "account": "OtherStore", "body": TRACKING},
        {**line, "account": "OTHERSTORE", "body": {**TRACKING, "isDelivered": True}},
    ]
    result = run("enqueue", "batch", "-", stdin="\n".join(json.dumps(x) for x in lines))
    assert result.exit_code == 0, result.output
    assert order_keys(redis_client) == {_tag_of("otherstore", "o-b")}
    assert (
        redis_client.hlen(OrderRef("otherstore", "o-b").key("seqs")) == 2
    )  # one order, in line order


def test_settings_keep_accounts_in_lower_case() -> None:
    settings = Settings(
        vtex_account="MyStore", vtex_account_rates={"MyStore": {"rate": 7, "burst": 2}}
    )
    assert settings.vtex_account == "mystore"
    assert settings.rate_for("mystore").rate == 7
    assert settings.rate_for("MYSTORE").burst == 2
    assert settings.rate_for("otherstore").rate == settings.vtex_rate_limit


def test_the_same_account_twice_in_the_rates_is_one_line(
    redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
) -> None:
    rates = '{"MyStore": {"rate": 5}, "mystore": {"rate": 50}}'
    settings_env.setenv("VTEX_ACCOUNT_RATES", rates)
    result = run("enqueue", "invoice", "o-1", "-", stdin=json.dumps(INVOICE))
    assert result.exit_code == 2
    assert result.stderr == (
        "vtex-relay: invalid setting VTEX_ACCOUNT_RATES: 'MyStore' and 'mystore' are the same "
        "account: accounts are case-insensitive, give each one once\n"
    )
    assert redis_client.dbsize() == 0


def test_the_default_account_from_the_environment_is_lower_cased(
    redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("VTEX_ACCOUNT", "TestStore")
    result = run("enqueue", "invoice", "o-env", "-", stdin=json.dumps(INVOICE))
    assert result.exit_code == 0, result.output
    assert order_keys(redis_client) == {_tag_of("teststore", "o-env")}
