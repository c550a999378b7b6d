"""The settings object, built once per process from the environment (and ``.env`` if present).

A missing or invalid setting raises ``ConfigurationError`` with one line naming the variable,
at start-up; programs print that line and exit instead of failing later inside a task. The line
never contains a credential: an app key or token with surrounding whitespace or a control
character (a newline from the file it was read from) is refused without being quoted. Accounts
(including the keys of ``VTEX_ACCOUNT_RATES``) are kept in lower case, as everywhere in
vtex-relay; a body may be at most ``MAX_BODY_BYTES``. Each account's own settings and
credentials (``VTEX_ACCOUNTS``, ``VTEX_ACCOUNTS_FILE``) are merged at parse into one
``accounts.Accounts``: every per-account question is then a dict lookup.
"""

import string
from functools import lru_cache
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from vtex_relay.accounts import Account, Accounts, AccountSettings, load_accounts_file, one_spelling
from vtex_relay.credentials import Credentials, clean_credential
from vtex_relay.errors import ConfigurationError
from vtex_relay.models import InvoicePolicy, parse_json

__all__ = [
    "DEFAULT_BASE_URL",
    "AccountSettings",
    "Credentials",
    "Rate",
    "Settings",
    "get_settings",
]

DEFAULT_BASE_URL = "https://{account}.{environment}.com.br"


class Sentinels(NamedTuple):
    """A ``sentinel://`` REDIS_URL: the sentinels' (host, port), the database, and the
    password of the primary and replicas (None: none)."""

    hosts: list[tuple[str, int]]
    db: int
    password: str | None


def _sentinels(url: str) -> Sentinels:
    hosts: list[tuple[str, int]] = []
    db, password = 0, None
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError("each part must be sentinel://host:port (parts separated by ';')")
        hosts.append((parsed.hostname, parsed.port or 26379))
        password = parsed.password or password
        path = parsed.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError("the database after the last sentinel must be a number")
            db = int(path)
    return Sentinels(hosts, db, password)


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
    # With a sentinel:// REDIS_URL: the primary's service name, and the sentinels' password.
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = None
    # Durable acknowledgement: an enqueue (and a worker's claim) is confirmed only once this
    # many replicas have it (Redis WAIT), within the time-out; 0: on the primary's word.
    enqueue_wait_replicas: int = Field(default=0, ge=0, le=16)
    enqueue_wait_timeout_ms: int = Field(default=500, gt=0, le=60_000)
    enqueue_wait_aof: bool = False  # also wait for the primary's AOF fsync (WAITAOF, Redis 7.2)
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
    # A worker whose sweep (its heartbeat) has not run for this long is not counted live.
    heartbeat_timeout: float = Field(default=30.0, ge=1, le=600)
    job_retention_days: float = Field(default=30.0, gt=0)
    task_events: bool = False  # Flower turns events on while it watches
    vtex_rate_limit: float = Field(default=100.0, ge=0)
    vtex_rate_burst: float = Field(default=10.0, ge=0)
    # Parsed by _accounts_json, not by pydantic-settings: its JSON errors are not
    # ValidationErrors. VTEX_ACCOUNT_RATES is the older name of VTEX_ACCOUNTS (rates only).
    vtex_accounts: Annotated[dict[Account, AccountSettings], NoDecode] = {}
    vtex_account_rates: Annotated[dict[Account, AccountSettings], NoDecode] = {}
    vtex_accounts_file: str | None = None  # a TOML file of [accounts.NAME] tables
    vtex_429_pause: float = Field(default=60.0, ge=0)
    # The longest any pause lasts, whatever a Retry-After asks (`accounts resume` ends one).
    vtex_429_pause_max: float = Field(default=900.0, gt=0)
    invoice_policy: InvoicePolicy = "single"
    verify_order_total: bool = True
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # The most messages one account may have in the Celery queue at once (fair share).
    dispatch_window: int = Field(default=32, ge=1, le=10_000)

    # The HTTP intake (`vtex-relay serve`, vtex_relay/intake/).
    intake_host: str | None = None  # its own host name: {account}.INTAKE_HOST names an account
    # More host names of its own (comma-separated or a JSON list): never read as an account.
    intake_hosts: Annotated[list[str], NoDecode] = []
    intake_account_connections: int = Field(default=20, ge=1)  # GET order calls per account
    intake_max_inflight_bytes: int = Field(default=128 * 1_048_576, gt=0)  # all bodies at once
    intake_batch_max_bytes: int = Field(default=64 * 1_048_576, gt=0)  # a /relay/batch body
    intake_max_connections: int = Field(default=1_000, ge=1)
    intake_max_header_bytes: int = Field(default=8_190, ge=1_024)  # one header line
    intake_read_timeout: float = Field(default=30.0, gt=0)  # to receive a request's body
    intake_keepalive_timeout: float = Field(default=15.0, gt=0)  # an idle connection is closed
    intake_retry_after: int = Field(default=5, ge=1)  # seconds, in a 503's Retry-After

    # Every account's own settings, merged once at parse (_merge_accounts).
    _accounts: Accounts = PrivateAttr()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        if value.startswith("sentinel://"):
            _sentinels(value)  # each part must parse
        return value

    @model_validator(mode="after")
    def _sentinel_needs_a_master(self) -> "Settings":
        if self.redis_url.startswith("sentinel://") and not self.redis_sentinel_master:
            raise ValueError(
                "REDIS_URL names sentinels (sentinel://): set REDIS_SENTINEL_MASTER to the "
                "primary's service name"
            )
        return self

    @field_validator("intake_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            value = parse_json(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):
            return [str(name).strip().rstrip(".").lower() for name in value if str(name).strip()]
        return value

    @field_validator("vtex_app_key", "vtex_app_token", mode="before")
    @classmethod
    def _clean_credential(cls, value: object) -> object:
        return clean_credential(value)

    @field_validator("vtex_accounts", "vtex_account_rates", mode="before")
    @classmethod
    def _accounts_json(cls, value: object) -> object:
        if isinstance(value, str | bytes):
            # Its ValueError says what is wrong in one line; an empty value means no overrides.
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object such as {"mystore": {"rate": 50, "burst": 5}}')
        one_spelling(value)
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
    def _merge_accounts(self) -> "Settings":
        # Each account is given once, in one place; a second entry would silently win.
        both = sorted(self.vtex_accounts.keys() & self.vtex_account_rates.keys())
        if both:
            raise ValueError(
                f"account {both[0]!r} is in both VTEX_ACCOUNTS and VTEX_ACCOUNT_RATES; give it "
                "once, in VTEX_ACCOUNTS"
            )
        own = {**self.vtex_account_rates, **self.vtex_accounts}
        if self.vtex_accounts_file:
            try:
                in_file = load_accounts_file(self.vtex_accounts_file)
            except ValueError as exc:
                raise ValueError(f"VTEX_ACCOUNTS_FILE {exc}") from None
            both = sorted(own.keys() & in_file.keys())
            if both:
                other = "VTEX_ACCOUNTS" if both[0] in self.vtex_accounts else "VTEX_ACCOUNT_RATES"
                raise ValueError(
                    f"account {both[0]!r} is in both {other} and VTEX_ACCOUNTS_FILE "
                    f"({self.vtex_accounts_file}); give it once"
                )
            own.update(in_file)
        accounts = Accounts(own, self.vtex_app_key, self.vtex_app_token)
        if self.vtex_account is not None and not accounts.knows(self.vtex_account):
            raise ValueError(
                f"VTEX_ACCOUNT {self.vtex_account!r} is not one of the configured accounts "
                "(VTEX_ACCOUNTS / VTEX_ACCOUNTS_FILE): add it there or change VTEX_ACCOUNT"
            )
        self._accounts = accounts
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

    def shown_redis_url(self) -> str:
        """``REDIS_URL`` without its passwords, for a message (each sentinel's part too)."""
        from kombu.utils.url import maybe_sanitize_url

        return ";".join(str(maybe_sanitize_url(part)) for part in self.redis_url.split(";"))

    def sentinels(self) -> "Sentinels | None":
        """The sentinels, database and primary's password of a ``sentinel://`` REDIS_URL
        (kombu's form: ``sentinel://[:password@]host:port;sentinel://host2:port/db``)."""
        return _sentinels(self.redis_url) if self.redis_url.startswith("sentinel://") else None

    def base_url(self, account: str) -> str:
        """The URL that ``/api/oms/...`` is appended to, for *account* (already validated)."""
        template = self.vtex_base_url or DEFAULT_BASE_URL
        return template.format(account=account, environment=self.vtex_environment)

    def relay_hosts(self) -> frozenset[str]:
        """The relay's own host names (``INTAKE_HOST``, ``INTAKE_HOSTS``), in lower case."""
        own = [self.intake_host.rstrip(".").lower()] if self.intake_host else []
        return frozenset([*own, *self.intake_hosts])

    def account(self, name: str) -> AccountSettings:
        """*name*'s own settings (all None when it has none)."""
        # Lower-cased again for jobs enqueued before accounts were normalised.
        return self._accounts.settings(name.lower())

    def configured(self) -> list[str]:
        """The accounts with settings of their own (VTEX_ACCOUNTS, _FILE, _RATES), by name."""
        return sorted(self._accounts.own)

    def knows(self, account: str) -> bool:
        """Whether *account* is one vtex-relay delivers for: any account, unless some account
        has its own ``appKey``; then only the configured ones (VTEX_ACCOUNTS / _FILE)."""
        return self._accounts.knows(account.lower())

    def credentials(self, account: str) -> Credentials:
        """The app key and token of *account*'s calls: its own, else the global pair.

        ``UnknownAccount`` if it is not known (``knows``); ``ConfigurationError`` if it has no
        credentials at all, or its token cannot be read (file, environment variable). Tokens
        given by reference are read on the first call, then kept: a dict lookup per call.
        """
        return self._accounts.credentials(account.lower())

    def tokens(self) -> list[str]:
        """Every configured token (global and per account), for the redactor;
        ``ConfigurationError`` if one cannot be read."""
        return self._accounts.tokens()

    def policy_for(self, account: str) -> InvoicePolicy:
        """*account*'s invoicing policy: ``single`` (one Output invoice per order) or
        ``partial`` (any number, each invoice number once)."""
        return self.account(account).invoice_policy or self.invoice_policy

    def verifies_total(self, account: str) -> bool:
        """Whether *account*'s invoices are checked against GET order's total before the POST
        (``verifyOrderTotal`` in ``VTEX_ACCOUNTS``, else ``VERIFY_ORDER_TOTAL``)."""
        own = self.account(account).verify_order_total
        return self.verify_order_total if own is None else own

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

    def require_credentials(self) -> None:
        """``ConfigurationError`` (one line naming the account or variable) unless every
        known account has credentials that can be read; a worker calls this at start-up."""
        self._accounts.check()


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
