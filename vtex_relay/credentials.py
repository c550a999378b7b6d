"""Credentials: the app key and token a call is made with, checked to be sendable as HTTP
headers, and a token read from where it is given (itself, an environment variable, a file such
as a Docker or Kubernetes secret). No error text here ever contains a credential.
"""

import os
from typing import NamedTuple

from pydantic import SecretStr

from vtex_relay.errors import ConfigurationError

# VTEX's credential headers: each call carries its account's pair (and the intake and the
# sandbox take a client's pair from them).
KEY_HEADER = "X-VTEX-API-AppKey"
TOKEN_HEADER = "X-VTEX-API-AppToken"  # noqa: S105 (a header name, not a secret)


class Credentials(NamedTuple):
    """The app key and token a call for an account is made with."""

    app_key: str
    app_token: SecretStr


def credential_problem(value: str) -> str | None:
    """Why *value* cannot be sent as an app key or token header (None: it can). The reason
    reads after "it"/a name, and never quotes the value."""
    # A token read from a file often ends with a newline; sent as is, it fails every call and
    # the HTTP library's error quotes it.
    if value != value.strip():
        return "has whitespace at its start or end (a trailing newline from a file?); remove it"
    if not value.isascii() or not value.isprintable():
        return "has a control or non-ASCII character; an HTTP header needs printable ASCII"
    return None


def clean_credential(value: object) -> object:
    """A field validator's body: refuse a credential that cannot be a header, unquoted."""
    if isinstance(value, str):
        problem = credential_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def read_secret_file(path: str) -> str:
    """The text of the file *path* (a function of its own, so tests can count the reads)."""
    with open(path, encoding="utf-8") as file:
        return file.read()


def read_token(
    account: str, token: SecretStr | None, env: str | None, file: str | None
) -> SecretStr | None:
    """*account*'s own token: *token*, or read from the environment variable *env* or the file
    *file* (None if none is given); ``ConfigurationError`` naming the account and where the
    token was to come from, never the token, if it cannot be read or sent."""
    if token is not None:
        return token
    if env is not None:
        where = f"the environment variable {env} (appTokenEnv)"
        value = os.environ.get(env)
        if value is None:
            raise ConfigurationError(f"account {account!r}: {where} is not set")
    elif file is not None:
        where = f"the file {file} (appTokenFile)"
        try:
            value = read_secret_file(file)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            message = f"account {account!r}: {where} cannot be read ({reason})"
            raise ConfigurationError(message) from None
        except ValueError:  # UnicodeDecodeError: its text would quote bytes of the file
            raise ConfigurationError(f"account {account!r}: {where} is not UTF-8 text") from None
        # A secret file usually ends with one newline (echo, an editor, kubectl create secret
        # --from-file): it is not part of the token. Anything more is refused below.
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    else:
        return None
    problem = "is empty" if not value else credential_problem(value)
    if problem is not None:
        raise ConfigurationError(f"account {account!r}: the token in {where} {problem}")
    return SecretStr(value)
