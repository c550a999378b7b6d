"""Per-account settings: VTEX_ACCOUNTS (one JSON object per account), the older
VTEX_ACCOUNT_RATES, and VTEX_429_PAUSE; each mistake is one line naming the variable."""

import pytest

from vtex_relay.errors import ConfigurationError
from vtex_relay.settings import Rate, Settings, get_settings


def test_an_account_s_own_rate_and_burst(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv(
        "VTEX_ACCOUNTS",
        '{"BigStore": {"rate": 50, "burst": 5}, "calm": {"rate": 2}, "bursty": {"burst": 30}}',
    )
    settings_env.setenv("VTEX_RATE_LIMIT", "100")
    settings_env.setenv("VTEX_RATE_BURST", "10")
    settings = get_settings()
    assert settings.rate_for("bigstore") == Rate(50, 5)
    assert settings.rate_for("calm") == Rate(2, 0)  # an own rate without a burst has none
    assert settings.rate_for("bursty") == Rate(100, 30)  # the global rate, its own burst
    assert settings.rate_for("anyone") == Rate(100, 10)


def test_the_older_variable_still_works(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("VTEX_ACCOUNT_RATES", '{"mystore": {"rate": 7, "burst": 2}}')
    assert get_settings().rate_for("MyStore") == Rate(7, 2)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"VTEX_ACCOUNTS": '{"a": {"rate": 1}}', "VTEX_ACCOUNT_RATES": '{"A": {"rate": 2}}'},
            "invalid settings: account 'a' is in both VTEX_ACCOUNTS and VTEX_ACCOUNT_RATES",
        ),
        (
            {"VTEX_ACCOUNTS": '{"a": {"rat": 1}}'},
            "invalid setting VTEX_ACCOUNTS: a.rat: Extra inputs are not permitted",
        ),
        ({"VTEX_ACCOUNTS": "[1]"}, "invalid setting VTEX_ACCOUNTS: must be a JSON object"),
        ({"VTEX_429_PAUSE": "-1"}, "invalid setting VTEX_429_PAUSE: "),
    ],
)
def test_a_mistake_is_one_line_naming_the_variable(
    settings_env: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        settings_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_vtex_429_pause_defaults_to_a_minute() -> None:
    assert Settings.model_fields["vtex_429_pause"].default == 60.0


def test_the_invoice_policy_per_account(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", '{"split": {"invoicePolicy": "partial"}}')
    settings = get_settings()
    assert settings.policy_for("SPLIT") == "partial"
    assert settings.policy_for("other") == "single"
    settings_env.setenv("INVOICE_POLICY", "partial")
    get_settings.cache_clear()
    assert get_settings().policy_for("other") == "partial"


def test_an_unknown_invoice_policy_is_named(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", '{"a": {"invoicePolicy": "many"}}')
    with pytest.raises(ConfigurationError, match=r"VTEX_ACCOUNTS: a\.invoicePolicy: Input should"):
        get_settings()
