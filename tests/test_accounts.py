"""Accounts with their own credentials: VTEX_ACCOUNTS and VTEX_ACCOUNTS_FILE, tokens given
directly, by environment variable or by file, the closed set of accounts, and every mistake as
one line naming the account and key, never the token."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.processes import ROOT
from vtex_relay import credentials as credentials_module
from vtex_relay import enqueue_invoice
from vtex_relay.cli.main import cli
from vtex_relay.errors import ConfigurationError, InvalidJob, UnknownAccount
from vtex_relay.redaction import Redactor
from vtex_relay.settings import Credentials, Rate, Settings, get_settings

SECRET = "TOKEN-of-an-account-never-shown-4e1a"
INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31",
    "invoiceNumber": "NF-1",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}


def toml_file(tmp_path: Path, text: str, name: str = "accounts.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def settings_error(settings_env: pytest.MonkeyPatch, **variables: str) -> str:
    """The one line get_settings() refuses *variables* with (checked to be one line)."""
    for name, value in variables.items():
        settings_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_key_in_vtex_accounts(settings_env: pytest.MonkeyPatch) -> None:
    accounts = {
        "ShopA": {
            "appKey": "key-a",
            "appToken": SECRET,
            "rate": 5,
            "burst": 2,
            "invoicePolicy": "partial",
        }
    }
    settings_env.setenv("VTEX_ACCOUNTS", json.dumps(accounts))
    settings_env.setenv("VTEX_ACCOUNT", "shopa")
    settings = get_settings()
    assert settings.credentials("SHOPA") == Credentials("key-a", settings.credentials("shopa")[1])
    assert settings.credentials("shopa").app_token.get_secret_value() == SECRET
    assert settings.rate_for("shopa") == Rate(5, 2)
    assert settings.policy_for("shopa") == "partial"
    assert SECRET not in repr(settings)
    assert SECRET in settings.tokens()


def test_a_toml_file_with_every_key_and_each_token_source(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "b-token"
    secret_file.write_text("TOKEN-B-from-a-file\n")  # as `echo` or a Kubernetes secret writes it
    crlf_file = tmp_path / "c-token"
    crlf_file.write_bytes(b"TOKEN-C-windows\r\n")
    path = toml_file(
        tmp_path,
        f"""
[accounts.shopa]
appKey = "key-a"
appToken = "TOKEN-A-direct"
rate = 50
burst = 5
invoicePolicy = "single"

[accounts.ShopB]
appKey = "key-b"
appTokenFile = "{secret_file}"
invoicePolicy = "partial"

[accounts.shopc]
appKey = "key-c"
appTokenFile = "{crlf_file}"

[accounts.shopd]
appKey = "key-d"
appTokenEnv = "SHOPD_TOKEN"
rate = 1
""",
    )
    settings_env.setenv("SHOPD_TOKEN", "TOKEN-D-from-the-environment")
    settings_env.setenv("VTEX_ACCOUNTS_FILE", path)
    settings_env.setenv("VTEX_ACCOUNT", "shopa")
    settings = get_settings()
    pairs = {
        name: (pair.app_key, pair.app_token.get_secret_value())
        for name in ("shopa", "shopb", "shopc", "shopd")
        for pair in [settings.credentials(name)]
    }
    assert pairs == {
        "shopa": ("key-a", "TOKEN-A-direct"),
        "shopb": ("key-b", "TOKEN-B-from-a-file"),
        "shopc": ("key-c", "TOKEN-C-windows"),
        "shopd": ("key-d", "TOKEN-D-from-the-environment"),
    }
    assert settings.rate_for("shopa") == Rate(50, 5)
    assert settings.rate_for("shopd") == Rate(1, 0)
    assert settings.policy_for("shopb") == "partial"
    assert set(settings.tokens()) >= {token for _, token in pairs.values()}
    settings.require_credentials()  # a worker would start


def test_the_example_file_in_the_repository(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    example = (ROOT / "accounts.example.toml").read_text()
    secret = tmp_path / "mystore-token"
    secret.write_text("TOKEN-mystore\n")
    path = toml_file(tmp_path, example.replace("/run/secrets/vtex-mystore-token", str(secret)))
    settings_env.setenv("VTEX_ACCOUNTS_FILE", path)
    settings_env.setenv("OTHERSTORE_APP_TOKEN", "TOKEN-otherstore")
    settings_env.setenv("VTEX_ACCOUNT", "mystore")
    settings = get_settings()
    assert settings.credentials("mystore").app_key == "vtexappkey-mystore-ABCDEF"
    assert settings.credentials("otherstore").app_token.get_secret_value() == "TOKEN-otherstore"
    # No credentials of its own: the global pair (the test environment's VTEX_APP_KEY).
    assert settings.credentials("thirdstore").app_key == settings.vtex_app_key
    assert not settings.knows("elsewhere")
    assert "appToken " not in example  # no secret in it
    assert "appToken=" not in example


def test_vtex_accounts_and_the_file_together(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = toml_file(tmp_path, '[accounts.filed]\nappKey = "k-f"\nappToken = "t-f"\n')
    settings_env.setenv("VTEX_ACCOUNTS_FILE", path)
    settings_env.setenv("VTEX_ACCOUNTS", '{"json": {"appKey": "k-j", "appToken": "t-j"}}')
    settings_env.setenv("VTEX_ACCOUNT", "json")
    settings = get_settings()
    assert settings.credentials("filed").app_key == "k-f"
    assert settings.credentials("json").app_key == "k-j"


class TestTheClosedSet:
    def test_only_the_configured_accounts_are_known(self, settings_env: pytest.MonkeyPatch) -> None:
        settings_env.setenv(
            "VTEX_ACCOUNTS", '{"own": {"appKey": "k", "appToken": "t"}, "rated": {"rate": 3}}'
        )
        settings_env.setenv("VTEX_ACCOUNT", "own")
        settings = get_settings()
        assert settings.knows("own")
        assert settings.knows("RATED")
        assert not settings.knows("other")
        with pytest.raises(UnknownAccount) as caught:
            settings.credentials("other")
        assert caught.value.account == "other"
        assert str(caught.value) == "account 'other' is not configured"
        # An account without credentials of its own is called with the global pair.
        assert settings.credentials("rated").app_key == settings.vtex_app_key

    def test_without_per_account_credentials_any_account_is_known(
        self, settings_env: pytest.MonkeyPatch
    ) -> None:
        settings_env.setenv("VTEX_ACCOUNTS", '{"rated": {"rate": 3}}')
        settings = get_settings()
        assert settings.knows("anyone")
        assert settings.credentials("anyone") == settings.credentials("rated")
        assert settings.credentials("anyone").app_key == settings.vtex_app_key

    def test_an_account_without_credentials_needs_the_global_pair(
        self, settings_env: pytest.MonkeyPatch
    ) -> None:
        settings_env.setenv(
            "VTEX_ACCOUNTS", '{"own": {"appKey": "k", "appToken": "t"}, "rated": {"rate": 3}}'
        )
        settings_env.setenv("VTEX_ACCOUNT", "own")
        settings_env.delenv("VTEX_APP_TOKEN")
        settings = get_settings()  # a producer needs no token
        with pytest.raises(ConfigurationError, match="account 'rated' has no appKey of its own"):
            settings.require_credentials()  # a worker refuses to start
        assert settings.credentials("own").app_key == "k"

    def test_the_default_account_must_be_known(self, settings_env: pytest.MonkeyPatch) -> None:
        message = settings_error(
            settings_env,
            VTEX_ACCOUNTS='{"own": {"appKey": "k", "appToken": "t"}}',
            VTEX_ACCOUNT="teststore",
        )
        assert message.startswith("invalid settings: VTEX_ACCOUNT 'teststore' is not one of")

    def test_enqueue_refuses_an_unknown_account(
        self, settings_env: pytest.MonkeyPatch, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        settings_env.setenv("VTEX_ACCOUNTS", '{"own": {"appKey": "k", "appToken": "t"}}')
        settings_env.setenv("VTEX_ACCOUNT", "own")
        with pytest.raises(InvalidJob) as caught:
            enqueue_invoice("o-1", INVOICE, account="Other")
        assert str(caught.value) == (
            "account: account 'other' is not configured (VTEX_ACCOUNTS / VTEX_ACCOUNTS_FILE)"
        )
        runner = CliRunner()
        args = ["enqueue", "invoice", "o-1", "-", "--account", "other"]
        result = runner.invoke(cli, args, input=json.dumps(INVOICE))
        assert result.exit_code == 2
        assert "account 'other' is not configured" in result.stderr
        line = {"kind": "invoice", "orderId": "o-2", "account": "other", "body": INVOICE}
        batch = tmp_path / "jobs.jsonl"
        batch.write_text(json.dumps({**line, "account": "own"}) + "\n" + json.dumps(line) + "\n")
        result = runner.invoke(cli, ["enqueue", "batch", str(batch)])
        assert result.exit_code == 2
        assert "line 2: account: account 'other' is not configured" in result.stderr
        assert redis_client.keys("*") == []
        assert enqueue_invoice("o-1", INVOICE)  # the default account is known


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        (
            {"a": {"appKey": "k", "appToken": SECRET, "appTokenEnv": "X"}},
            "invalid setting VTEX_ACCOUNTS: a: appToken and appTokenEnv: give the token one way",
        ),
        (
            {"a": {"appKey": "k", "appTokenFile": "/f", "appTokenEnv": "X"}},
            "invalid setting VTEX_ACCOUNTS: a: appTokenEnv and appTokenFile: give the token",
        ),
        ({"a": {"appKey": "k"}}, "invalid setting VTEX_ACCOUNTS: a: appKey without a token"),
        (
            {"a": {"appToken": SECRET}},
            "invalid setting VTEX_ACCOUNTS: a: appToken without an appKey: give both",
        ),
        (
            {"a": {"appKey": "k", "appToken": SECRET + "\n"}},
            "invalid setting VTEX_ACCOUNTS: a.appToken: has whitespace at its start or end",
        ),
        (
            {"a": {"appKey": "k", "appToken": "x\x01" + SECRET}},
            "invalid setting VTEX_ACCOUNTS: a.appToken: has a control or non-ASCII character",
        ),
        (
            {"a": {"appKey": "k", "appTokenEnv": "not a name"}},
            "invalid setting VTEX_ACCOUNTS: a.appTokenEnv: must be an environment variable's",
        ),
        (
            {"a": {"appKey": "k", "app_token": SECRET}},
            "invalid setting VTEX_ACCOUNTS: a.app_token: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_account_is_named_without_its_token(
    settings_env: pytest.MonkeyPatch, accounts: dict[str, object], expected: str
) -> None:
    message = settings_error(settings_env, VTEX_ACCOUNTS=json.dumps(accounts))
    assert message.startswith(expected)
    assert SECRET not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[accounts.a]\nrat = 1\n", "accounts.a.rat: Extra inputs are not permitted"),
        (
            f'[accounts.a]\nappKey = "k"\nappToken = "{SECRET}"\nappTokenFile = "/x"\n',
            "accounts.a: appToken and appTokenFile: give the token one way only",
        ),
        (f'[accounts.a]\nappToken = "{SECRET}"\n', "accounts.a: appToken without an appKey"),
        (
            f'[accounts.a]\nappKey = "k"\nappToken = "{SECRET} "\n',
            "accounts.a.appToken: has whitespace at its start or end",
        ),
        ("[accounts.a]\nrate = 1\n[accounts.A]\nrate = 2\n", "'a' and 'A' are the same account"),
        ('[accounts."a.b"]\nrate = 1\n', "accounts.a.b.[key]: must be a VTEX account name"),
        ("[stores.a]\nrate = 1\n", "unknown key 'stores': accounts go in [accounts.NAME]"),
        (f'[accounts.a]\nappToken = "{SECRET}\n', "not valid TOML: "),
    ],
)
def test_a_bad_file_is_named_with_the_account_and_key(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    path = toml_file(tmp_path, text)
    message = settings_error(settings_env, VTEX_ACCOUNTS_FILE=path)
    assert message.startswith(f"invalid settings: VTEX_ACCOUNTS_FILE {path}: {expected}")
    assert SECRET not in message


def test_a_missing_file_and_an_account_given_twice(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nowhere.toml")
    message = settings_error(settings_env, VTEX_ACCOUNTS_FILE=missing)
    assert message == (
        f"invalid settings: VTEX_ACCOUNTS_FILE {missing}: cannot be read (No such file or "
        "directory)"
    )
    path = toml_file(tmp_path, "[accounts.twice]\nrate = 1\n")
    message = settings_error(
        settings_env, VTEX_ACCOUNTS_FILE=path, VTEX_ACCOUNTS='{"Twice": {"rate": 2}}'
    )
    assert message.startswith(
        "invalid settings: account 'twice' is in both VTEX_ACCOUNTS and VTEX_ACCOUNTS_FILE"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read (No such file or directory)"),
        (SECRET + "\n\n", "has whitespace at its start or end"),
        (" " + SECRET + "\n", "has whitespace at its start or end"),
        (SECRET + "\t\n", "has whitespace at its start or end"),
        ("", "is empty"),
        ("\n", "is empty"),
    ],
)
def test_a_token_file_that_cannot_be_used(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    own = {"shop": {"appKey": "k", "appTokenFile": str(token_file)}}
    settings = Settings(vtex_accounts=own, vtex_account="shop")  # a producer needs no token
    for check in (
        settings.require_credentials,
        settings.tokens,
        lambda: settings.credentials("shop"),
    ):
        with pytest.raises(ConfigurationError) as caught:
            check()
        message = str(caught.value)
        assert message.startswith("account 'shop': the ")
        assert expected in message
        assert f"file {token_file} (appTokenFile)" in message
        assert SECRET not in message


def test_a_token_variable_that_is_unset_or_bad(settings_env: pytest.MonkeyPatch) -> None:
    own = {"shop": {"appKey": "k", "appTokenEnv": "SHOP_TOKEN"}}
    settings_env.delenv("SHOP_TOKEN", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        Settings(vtex_accounts=own, vtex_account="shop").require_credentials()
    assert str(caught.value) == (
        "account 'shop': the environment variable SHOP_TOKEN (appTokenEnv) is not set"
    )
    settings_env.setenv("SHOP_TOKEN", SECRET + "\n")
    with pytest.raises(ConfigurationError, match="has whitespace") as caught:
        Settings(vtex_accounts=own, vtex_account="shop").credentials("shop")
    assert SECRET not in str(caught.value)


def test_a_worker_refuses_to_start_with_an_unreadable_token(tmp_path: Path) -> None:
    path = toml_file(tmp_path, '[accounts.shop]\nappKey = "k"\nappTokenFile = "/nonexistent/t"\n')
    env = {**os.environ, "VTEX_ACCOUNTS_FILE": path, "VTEX_ACCOUNT": "shop"}
    done = subprocess.run(
        [sys.executable, "-c", "import worker.app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "vtex-relay: account 'shop': the file /nonexistent/t (appTokenFile) cannot be read "
        "(No such file or directory)"
    )


def test_a_thousand_accounts_cost_one_lookup_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = []
    for n in range(1000):
        token = tmp_path / f"t{n}"
        token.write_text(f"TOKEN-{n:04d}-of-many\n")
        lines.append(f'[accounts.shop{n}]\nappKey = "key-{n}"\nappTokenFile = "{token}"\n')
    path = toml_file(tmp_path, "\n".join(lines))
    reads: list[str] = []
    read = credentials_module.read_secret_file

    def counted(name: str) -> str:
        reads.append(name)
        return read(name)

    monkeypatch.setattr(credentials_module, "read_secret_file", counted)
    settings = Settings(vtex_accounts_file=path, vtex_account="shop0")
    assert reads == []  # parsing reads no secret: a producer needs none
    for _ in range(3):
        for n in range(1000):
            assert settings.credentials(f"shop{n}").app_key == f"key-{n}"
    assert len(reads) == 1000  # each file read once, then a dict lookup per call
    assert type(settings._accounts.own) is dict
    redact = Redactor(settings.tokens())
    text = " ".join(f"TOKEN-{n:04d}-of-many" for n in range(0, 1000, 7))
    assert "TOKEN" not in redact(text)
