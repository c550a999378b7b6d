"""Accounts: what each VTEX account has of its own (credentials, rate, invoice policy), where
that comes from, and which accounts exist.

An account's settings come from the ``VTEX_ACCOUNTS`` JSON object or a TOML file named by
``VTEX_ACCOUNTS_FILE`` (``[accounts.NAME]`` tables; ``load_accounts_file``). Its token is given
as ``appToken``, or by reference: ``appTokenEnv`` (an environment variable's name) or
``appTokenFile`` (a file, such as a Docker or Kubernetes secret), so that no secret needs to sit
in the accounts file.

``Accounts`` is the one lookup structure a ``Settings`` builds at parse: every question about an
account is a dict lookup, whatever the number of accounts. Tokens are read on first use (a
worker reads them all at start-up), not at parse: a producer only needs to know which accounts
exist and needs no secret. No error text here contains a token.
"""

import re
import tomllib
from collections.abc import Mapping
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from vtex_relay.credentials import Credentials, clean_credential, read_token
from vtex_relay.errors import ConfigurationError, UnknownAccount
from vtex_relay.identifiers import check_account
from vtex_relay.models import InvoicePolicy

Account = Annotated[str, AfterValidator(check_account)]

TOKEN_SOURCES = ("appToken", "appTokenEnv", "appTokenFile")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AccountSettings(BaseModel):
    """One account's own settings; a key left out takes the global one.

    ``rate``/``burst`` override ``VTEX_RATE_LIMIT``/``VTEX_RATE_BURST`` (an own rate without a
    burst has none); ``invoicePolicy`` overrides ``INVOICE_POLICY``; ``appKey`` with one of
    ``appToken``, ``appTokenEnv``, ``appTokenFile`` replace ``VTEX_APP_KEY``/``VTEX_APP_TOKEN``;
    ``intakeKey`` is a token the HTTP intake accepts in place of the app token (for an ERP that
    must not hold the VTEX token); ``verifyOrderTotal`` overrides ``VERIFY_ORDER_TOTAL``. Unknown
    keys are refused by name, so a typo is not silently
    ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float | None = Field(default=None, ge=0)
    burst: float | None = Field(default=None, ge=0)
    invoice_policy: InvoicePolicy | None = Field(default=None, alias="invoicePolicy")
    app_key: str | None = Field(default=None, alias="appKey")
    app_token: SecretStr | None = Field(default=None, alias="appToken")
    app_token_env: str | None = Field(default=None, alias="appTokenEnv")
    app_token_file: str | None = Field(default=None, alias="appTokenFile")
    intake_key: SecretStr | None = Field(default=None, alias="intakeKey")
    verify_order_total: bool | None = Field(default=None, alias="verifyOrderTotal")

    @field_validator("app_key", "app_token", "intake_key", mode="before")
    @classmethod
    def _clean(cls, value: object) -> object:
        if value == "":
            raise ValueError("is empty")
        return clean_credential(value)

    @field_validator("app_token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError("must be an environment variable's name (letters, digits and _)")
        return value

    @field_validator("app_token_file")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value or "\0" in value:
            raise ValueError("must be a file's path")
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> "AccountSettings":
        sources = (self.app_token, self.app_token_env, self.app_token_file)
        given = [name for name, value in zip(TOKEN_SOURCES, sources, strict=True) if value]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: give the token one way only")
        if self.app_key is not None and not given:
            raise ValueError("appKey without a token: give appToken, appTokenEnv or appTokenFile")
        if given and self.app_key is None:
            raise ValueError(f"{given[0]} without an appKey: give both")
        return self


NO_OWN = AccountSettings()
_ACCOUNTS = TypeAdapter(dict[Account, AccountSettings])


def one_spelling(accounts: Mapping[object, object]) -> None:
    """``ValueError`` if two keys are one account: keys are lower-cased by their validation,
    so two spellings of one account would silently become one entry, whichever came last."""
    seen: dict[str, object] = {}
    for key in accounts:
        try:
            account = check_account(key) if isinstance(key, str) else None
        except ValueError:
            continue  # the key's own validation names it
        if account is not None and seen.setdefault(account, key) != key:
            raise ValueError(
                f"{seen[account]!r} and {key!r} are the same account: accounts are "
                "case-insensitive, give each one once"
            )


def load_accounts_file(path: str) -> dict[str, AccountSettings]:
    """The accounts of the TOML file *path*: ``[accounts.NAME]`` tables of ``AccountSettings``
    keys. ``ValueError`` whose one line starts with *path* and names the account and key."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:  # says where, not what: no value is quoted
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    unknown = sorted(set(data) - {"accounts"})
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}: accounts go in [accounts.NAME]")
    accounts = data.get("accounts", {})
    if not isinstance(accounts, dict):
        raise ValueError(f"{path}: accounts must be a table of [accounts.NAME] tables")
    try:
        one_spelling(accounts)
        return _ACCOUNTS.validate_python(accounts)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])[:100]
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: accounts.{where}: {message}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class Accounts:
    """The configured accounts (name -> own settings) and the global credentials.

    ``closed``: at least one account has its own ``appKey``; then the configured accounts are
    the only ones. Otherwise (no per-account credentials) any account is known and is called
    with ``VTEX_APP_KEY``/``VTEX_APP_TOKEN``. Accounts are lower-case, as everywhere.
    """

    def __init__(
        self,
        own: Mapping[str, AccountSettings],
        app_key: str | None,
        app_token: SecretStr | None,
    ) -> None:
        self.own = dict(own)
        self.closed = any(settings.app_key is not None for settings in self.own.values())
        self._app_token = app_token  # for tokens(): redacted even without a key
        self._pair = Credentials(app_key, app_token) if app_key and app_token else None
        self._missing = [
            name
            for name, value in (("VTEX_APP_KEY", app_key), ("VTEX_APP_TOKEN", app_token))
            if not value
        ]
        self._credentials: dict[str, Credentials] | None = None

    def settings(self, account: str) -> AccountSettings:
        """*account*'s own settings (all None when it has none)."""
        return self.own.get(account, NO_OWN)

    def knows(self, account: str) -> bool:
        """Whether jobs of *account* can be delivered (see ``closed``)."""
        return not self.closed or account in self.own

    def credentials(self, account: str) -> Credentials:
        """The key and token of *account*'s calls: ``UnknownAccount`` if it is not known,
        ``ConfigurationError`` if it has none (neither its own nor the global pair)."""
        found = self._resolved().get(account)
        if found is not None:
            return found
        if not self.knows(account):
            raise UnknownAccount(account)
        return self._global(account)

    def tokens(self) -> list[str]:
        """Every configured token: the global one and each account's (read if not yet)."""
        tokens = [pair.app_token.get_secret_value() for pair in self._resolved().values()]
        if self._app_token is not None:
            tokens.append(self._app_token.get_secret_value())
        tokens += [own.intake_key.get_secret_value() for own in self.own.values() if own.intake_key]
        return tokens

    def check(self) -> None:
        """``ConfigurationError`` unless every known account has usable credentials: each own
        token can be read, and the global pair is set if any account needs it."""
        self._resolved()
        if not self.closed:
            self._global(None)
        for account, settings in self.own.items():
            if settings.app_key is None:
                self._global(account)

    def _resolved(self) -> dict[str, Credentials]:
        # Read once, then a dict lookup per call. Two threads racing here both read the same
        # values and one dict wins, so no lock is needed.
        if self._credentials is None:
            resolved = {}
            for account, own in self.own.items():
                token = read_token(account, own.app_token, own.app_token_env, own.app_token_file)
                if own.app_key is not None and token is not None:
                    resolved[account] = Credentials(own.app_key, token)
            self._credentials = resolved
        return self._credentials

    def _global(self, account: str | None) -> Credentials:
        if self._pair is not None:
            return self._pair
        missing = " and ".join(self._missing)
        if account is None or not self.closed:
            raise ConfigurationError(f"{missing} must be set to call VTEX")
        verb = "are" if len(self._missing) > 1 else "is"
        raise ConfigurationError(
            f"account {account!r} has no appKey of its own and {missing} {verb} not set: give "
            "it appKey and a token, or set VTEX_APP_KEY and VTEX_APP_TOKEN"
        )
