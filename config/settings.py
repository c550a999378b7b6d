"""The settings object, built once per process from the environment (and ``.env`` if present).

A missing or invalid setting raises ``ConfigurationError`` with one line naming the variable,
at start-up; programs print that line and exit instead of failing later inside a task.
"""

import string
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vtex_relay.errors import ConfigurationError
from vtex_relay.identifiers import check_account

DEFAULT_BASE_URL = "https://{account}.{environment}.com.br"

Account = Annotated[str, AfterValidator(check_account)]


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

    def base_url(self, account: str) -> str:
        """The URL that ``/api/oms/...`` is appended to, for *account* (already validated)."""
        template = self.vtex_base_url or DEFAULT_BASE_URL
        return template.format(account=account, environment=self.vtex_environment)

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
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigurationError(f"invalid setting {name}: {first['msg']}") from None
