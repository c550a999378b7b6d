"""The settings object, built once per process from the environment (and ``.env`` if present).

A missing or invalid setting raises ``ConfigurationError`` with one line naming the variable,
at start-up; programs print that line and exit instead of failing later inside a task.
"""

import string
from functools import lru_cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from vtex_relay.errors import ConfigurationError
from vtex_relay.identifiers import check_account

DEFAULT_BASE_URL = "https://{account}.{environment}.com.br"

Account = Annotated[str, AfterValidator(check_account)]


class AccountRate(BaseModel):
    """One account's own limit, overriding VTEX_RATE_LIMIT / VTEX_RATE_BURST."""

    rate: float = Field(ge=0)
    burst: float = Field(default=0.0, ge=0)


class Settings(BaseSettings):
    """Every knob of vtex-relay. Field ``x_y`` is read from the environment variable ``X_Y``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

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
    vtex_account_rates: dict[Account, AccountRate] = {}

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
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

    def rate_for(self, account: str) -> AccountRate:
        """The rate limit (requests per second; 0: none) and burst of *account*'s calls."""
        own = self.vtex_account_rates.get(account)
        return own or AccountRate(rate=self.vtex_rate_limit, burst=self.vtex_rate_burst)

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
        name = str(first["loc"][0]).upper()
        raise ConfigurationError(f"invalid setting {name}: {message}") from None
