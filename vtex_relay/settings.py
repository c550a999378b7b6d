"""The settings object, built once per process from the environment (and ``.env`` if present).

A missing or invalid setting raises ``ConfigurationError`` with one line naming the variable,
at start-up; programs print that line and exit instead of failing later inside a task. The line
never contains a credential: an app key or token with surrounding whitespace or a control
character (a newline from the file it was read from) is refused without being quoted. Accounts
(including the keys of ``VTEX_ACCOUNT_RATES``) are kept in lower case, as everywhere in
vtex-relay; a body may be at most ``MAX_BODY_BYTES``.
"""

import string
from functools import lru_cache
from typing import Annotated, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from vtex_relay.errors import ConfigurationError
from vtex_relay.identifiers import check_account
from vtex_relay.models import InvoicePolicy, parse_json

DEFAULT_BASE_URL = "https://{account}.{environment}.com.br"

Account = Annotated[str, AfterValidator(check_account)]


class AccountSettings(BaseModel):
    """One account's own settings (``VTEX_ACCOUNTS``); a key left out takes the global one.

    ``rate``/``burst`` override ``VTEX_RATE_LIMIT``/``VTEX_RATE_BURST`` (an own rate without
    a burst has none); ``invoicePolicy`` overrides ``INVOICE_POLICY``. Unknown keys are refused
    by name, so a typo is not silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float | None = Field(default=None, ge=0)
    burst: float | None = Field(default=None, ge=0)
    invoice_policy: InvoicePolicy | None = Field(default=None, alias="invoicePolicy")


class Credentials(NamedTuple):  # stand-in for the accounts branch
    """An account's VTEX API key pair."""

    app_key: str
    app_token: SecretStr


class Rate(NamedTuple):
    """An account's rate limit (requests per second; 0: none) and burst."""

    rate: float
    burst: float


class Settings(BaseSettings):
    """Every knob of vtex-relay. Field ``x_y`` is read from the environment variable ``X_Y``."""

    # Inputs stay out of error texts: a credential must not reach a log through its error.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    redis_url: str = "redis://localhost:6379/0"
    vtex_account: Account | None = None
    vtex_environment: Account = "vtexcommercestable"
    vtex_app_key: str | None = None
    vtex_app_token: SecretStr | None = None
    vtex_base_url: str | None = None
    vtex_timeout: float = Field(default=10.0, gt=0, le=300)
    retry_max_attempts: int = Field(default=8, ge=1, le=100)
    retry_backoff_base: float = Field(default=1.0, gt=0)
    retry_backoff_max: float = Field(default=300.0, gt=0)
    lease_seconds: float = Field(default=45.0, ge=1)
    sweep_interval: float = Field(default=0.25, gt=0, le=60)
    job_retention_days: float = Field(default=30.0, gt=0)
    task_events: bool = False  # Flower turns events on while it watches
    vtex_rate_limit: float = Field(default=100.0, ge=0)
    vtex_rate_burst: float = Field(default=10.0, ge=0)
    # Parsed by _accounts_json, not by pydantic-settings: its JSON errors are not
    # ValidationErrors. VTEX_ACCOUNT_RATES is the older name of VTEX_ACCOUNTS (rates only).
    vtex_accounts: Annotated[dict[Account, AccountSettings], NoDecode] = {}
    vtex_account_rates: Annotated[dict[Account, AccountSettings], NoDecode] = {}
    vtex_429_pause: float = Field(default=60.0, ge=0)
    invoice_policy: InvoicePolicy = "single"
    verify_order_total: bool = True
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # The HTTP intake (`vtex-relay serve`, vtex_relay/intake/).
    intake_host: str | None = None  # its own host name: {account}.INTAKE_HOST names an account
    intake_batch_max_bytes: int = Field(default=64 * 1_048_576, gt=0)  # a /relay/batch body
    intake_max_connections: int = Field(default=1_000, ge=1)
    intake_max_header_bytes: int = Field(default=8_190, ge=1_024)  # one header line
    intake_read_timeout: float = Field(default=30.0, gt=0)  # to receive a request's body
    intake_keepalive_timeout: float = Field(default=15.0, gt=0)  # an idle connection is closed
    intake_retry_after: int = Field(default=5, ge=1)  # seconds, in a 503's Retry-After

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("vtex_app_key", "vtex_app_token", mode="before")
    @classmethod
    def _clean_credential(cls, value: object) -> object:
        # A token read from a file often ends with a newline; sent as is, it fails every call
        # and the HTTP library's error quotes it. The messages never show the value.
        if isinstance(value, str):
            if value != value.strip():
                raise ValueError(
                    "has whitespace at its start or end (a trailing newline from a file?); "
                    "remove it"
                )
            if not value.isascii() or not value.isprintable():
                raise ValueError(
                    "has a control or non-ASCII character; an HTTP header needs printable ASCII"
                )
        return value

    @field_validator("vtex_accounts", "vtex_account_rates", mode="before")
    @classmethod
    def _accounts_json(cls, value: object) -> object:
        if isinstance(value, str | bytes):
            # Its ValueError says what is wrong in one line; an empty value means no overrides.
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object such as {"mystore": {"rate": 50, "burst": 5}}')
        # Keys are lower-cased by their validation: two spellings of one account would
        # silently become one entry, whichever came last.
        seen: dict[str, str] = {}
        for key in value:
            try:
                account = check_account(key) if isinstance(key, str) else None
            except ValueError:
                continue  # the key's own validation names it
            if account is not None and seen.setdefault(account, key) != key:
                raise ValueError(
                    f"{seen[account]!r} and {key!r} are the same account: accounts are "
                    "case-insensitive, give each one once"
                )
        return value

    @field_validator("vtex_base_url")
    @classmethod
    def _base_url_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        if not fields <= {"account", "environment"}:
            raise ValueError("may only use the placeholders {account} and {environment}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _each_account_once(self) -> "Settings":
        both = sorted(self.vtex_accounts.keys() & self.vtex_account_rates.keys())
        if both:
            raise ValueError(
                f"account {both[0]!r} is in both VTEX_ACCOUNTS and VTEX_ACCOUNT_RATES; give it "
                "once, in VTEX_ACCOUNTS"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_call(self) -> "Settings":
        # A lease that can run out while its call is still going would let a second worker
        # start the same job; an httpx call can take up to about three timeouts.
        if self.lease_seconds < 3 * self.vtex_timeout + 5:
            raise ValueError(
                f"LEASE_SECONDS ({self.lease_seconds}) must be at least 3 * VTEX_TIMEOUT + 5 "
                f"({3 * self.vtex_timeout + 5})"
            )
        return self

    def base_url(self, account: str) -> str:
        """The URL that ``/api/oms/...`` is appended to, for *account* (already validated)."""
        template = self.vtex_base_url or DEFAULT_BASE_URL
        return template.format(account=account, environment=self.vtex_environment)

    def account(self, name: str) -> AccountSettings:
        """*name*'s own settings (all None when it has none)."""
        # Lower-cased again for jobs enqueued before accounts were normalised.
        name = name.lower()
        return self.vtex_accounts.get(name) or self.vtex_account_rates.get(name) or _NO_OWN

    def policy_for(self, account: str) -> InvoicePolicy:
        """*account*'s invoicing policy: ``single`` (one Output invoice per order) or
        ``partial`` (any number, each invoice number once)."""
        return self.account(account).invoice_policy or self.invoice_policy

    def rate_for(self, account: str) -> Rate:
        """The rate limit (requests per second; 0: none) and burst of *account*'s calls."""
        own = self.account(account)
        if own.rate is None:
            burst = self.vtex_rate_burst if own.burst is None else own.burst
            return Rate(self.vtex_rate_limit, burst)
        return Rate(own.rate, own.burst or 0.0)

    def input_limit(self) -> int:
        """The most bytes read for one body or batch line before it is refused unparsed.

        Four times ``max_body_bytes``: indentation and ``\\u`` escapes make a body's file up to
        about three times its compact UTF-8 JSON, which is what ``max_body_bytes`` measures.
        """
        return 4 * self.max_body_bytes

    def require_credentials(self) -> tuple[str, SecretStr]:
        """The app key and token; a worker calls this at start-up."""
        missing = [
            name
            for name, value in (
                ("VTEX_APP_KEY", self.vtex_app_key),
                ("VTEX_APP_TOKEN", self.vtex_app_token),
            )
            if not value
        ]
        if missing or self.vtex_app_key is None or self.vtex_app_token is None:
            raise ConfigurationError(f"{' and '.join(missing)} must be set to call VTEX")
        return self.vtex_app_key, self.vtex_app_token

    # stand-in for the accounts branch: VTEX_APP_KEY / VTEX_APP_TOKEN for every account, and
    # every account known. The accounts branch replaces these three with per-account ones.
    def credentials(self, account: str) -> Credentials:
        """*account*'s API key pair; ``ConfigurationError`` when there is none."""
        key, token = self.require_credentials()
        return Credentials(key, token)

    def knows(self, account: str) -> bool:
        """Whether *account* is configured here."""
        return True

    def tokens(self) -> list[str]:
        """Every configured token, for redaction."""
        return [self.vtex_app_token.get_secret_value()] if self.vtex_app_token else []


_NO_OWN = AccountSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use.

    Raises ``ConfigurationError`` whose one-line message names the variable.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a rule across settings: its message names them
            raise ConfigurationError(f"invalid settings: {message}") from None
        name, *inner = (str(part) for part in first["loc"])
        if inner:  # inside VTEX_ACCOUNTS: which account, which field
            message = f"{'.'.join(inner)[:100]}: {message}"
        raise ConfigurationError(f"invalid setting {name.upper()}: {message}") from None
    except SettingsError as exc:  # a source that could not be read; the text names the field
        raise ConfigurationError(f"invalid settings: {exc}") from None
    except UnicodeDecodeError as exc:  # only the .env file is decoded here
        where = f"byte {exc.start}: {exc.reason}"
        raise ConfigurationError(f"invalid settings: .env is not UTF-8 ({where})") from None
