"""The sandbox's check of a request's credentials (``X-VTEX-API-AppKey`` and ``-AppToken``).

An account given its own credentials (``SandboxConfig.credentials``, ``--accounts-file``)
accepts only those, as VTEX does: a call made with another account's key is refused (401).
Any other account accepts the global ``app_key``/``app_token`` when set, else any non-empty
pair. Compared in constant time; the token is never logged, only the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from secrets import compare_digest

from vtex_relay.credentials import KEY_HEADER, TOKEN_HEADER


def authorised(
    headers: Mapping[str, str],
    account: str,
    *,
    app_key: str | None,
    app_token: str | None,
    credentials: Mapping[str, tuple[str, str]],
) -> bool:
    """Whether *headers* carry credentials that *account*'s requests accept."""
    # aiohttp's header lookup is case-insensitive, as VTEX's is.
    key = headers.get(KEY_HEADER, "")
    token = headers.get(TOKEN_HEADER, "")
    if not key or not token:
        return False
    own = credentials.get(account.lower())
    if own is not None:
        app_key, app_token = own
    if app_key is not None and not compare_digest(key.encode(), app_key.encode()):
        return False
    return app_token is None or compare_digest(token.encode(), app_token.encode())
