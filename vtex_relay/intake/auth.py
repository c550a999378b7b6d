"""Authentication as VTEX does it: ``X-VTEX-API-AppKey`` and ``X-VTEX-API-AppToken``.

The pair must be the account's own configured credentials, so an ERP's existing configuration
works unchanged and nobody without them can enqueue for the account. Alternatively the token
may be the account's intake key (``intakeKey`` in ``VTEX_ACCOUNTS``), for an ERP that must not
hold the VTEX token: it then sends the app key with the intake key in place of the token.
Comparisons are constant-time (``hmac.compare_digest``) and every candidate is compared, so the
time taken does not say which part was wrong. Every authentication failure gets the same 401
text, an account the relay does not serve included (so nobody can list the accounts it
serves by trying names); the reason goes to the log only. No header value ever goes into an
answer or a log.
"""

import logging
from hmac import compare_digest

from multidict import CIMultiDictProxy

from vtex_relay.credentials import KEY_HEADER, TOKEN_HEADER
from vtex_relay.errors import ConfigurationError, Refusal, UnknownAccount
from vtex_relay.settings import Settings

UNAUTHORISED = (
    "Unauthorized: X-VTEX-API-AppKey and X-VTEX-API-AppToken must be the account's credentials"
)
log = logging.getLogger("vtex_relay.intake")


def intake_key(settings: Settings, account: str) -> str | None:
    """The account's intake key, if it has one (``intakeKey`` in ``VTEX_ACCOUNTS``)."""
    value = settings.account(account).intake_key
    return value.get_secret_value() if value is not None else None


def authenticate(settings: Settings, account: str, headers: CIMultiDictProxy[str]) -> None:
    """Return if the request's key pair is *account*'s; else ``Refusal`` 401 (or 503 when the
    relay itself has no credentials configured, which no client can fix)."""
    try:
        credentials = settings.credentials(account)
    except UnknownAccount:
        # 401, as VTEX answers a key pair that is not the account's: the caller cannot be
        # authorised for an account the relay does not serve. The same text as a wrong pair.
        log.warning("401: account %s is not served by this relay", account)
        raise Refusal(401, UNAUTHORISED) from None
    except ConfigurationError:
        raise Refusal(503, "The relay has no VTEX credentials configured") from None
    key = headers.get(KEY_HEADER, "").encode("utf-8", "replace")
    token = headers.get(TOKEN_HEADER, "").encode("utf-8", "replace")
    tokens = [credentials.app_token.get_secret_value()]
    own = intake_key(settings, account)
    if own is not None:
        tokens.append(own)
    key_ok = compare_digest(key, credentials.app_key.encode())
    token_ok = False
    for candidate in tokens:
        token_ok |= compare_digest(token, candidate.encode())
    if not (key_ok and token_ok and key and token):
        missing = "missing" if not (key and token) else "not the account's"
        log.warning("401: account %s: the app key or token is %s", account, missing)
        raise Refusal(401, UNAUTHORISED)
