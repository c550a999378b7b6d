"""Which account a request is for, taken as VTEX clients send it.

In order: a path prefix ``/{account}/api/oms/...`` (the form of VTEX's
``https://api.vtex.com/{account}/`` base URL), the ``an`` query parameter, the host name, else
``VTEX_ACCOUNT``. Two sources that name different accounts are refused: a request must not
be enqueued for an account its client did not mean.

A host name names an account in two forms only: VTEX's own, ``{account}.{environment}.com.br``
where the environment is VTEX's (``vtexcommercestable``, ``vtexcommercebeta``, ... or
``VTEX_ENVIRONMENT``), and ``{account}.`` followed by one of the relay's own host names
(``INTAKE_HOST``, ``INTAKE_HOSTS``). The relay's own host name never names one, whatever it
looks like: ``relay.lojaexemplo.com.br`` is the relay, not an account ``relay``.
"""

import re

from vtex_relay.errors import FieldError, Refusal
from vtex_relay.identifiers import check_account
from vtex_relay.intake.answers import invalid
from vtex_relay.settings import Settings

# VTEX's own host names: {account}.vtexcommercestable.com.br, {account}.vtexcommercebeta...
_VTEX_HOST = re.compile(r"([^.]+)\.([^.]+)\.com\.br")


def account_of(
    settings: Settings, path_account: str | None, an: list[str], host: str | None
) -> str:
    """The checked (lower-case) account of a request; ``Refusal`` 400 if it names none, an
    invalid one or two different ones."""
    if len(an) > 1:
        raise invalid([FieldError("an", "given more than once")])
    named = [
        (source, value)
        for source, value in (
            ("path", path_account),
            ("an", an[0] if an else None),
            ("host", _from_host(settings, host)),
        )
        if value is not None
    ]
    checked: dict[str, str] = {}
    for source, value in named:
        try:
            checked[source] = check_account(value)
        except ValueError as exc:
            raise invalid([FieldError(f"account ({source})", str(exc))]) from None
    if len(set(checked.values())) > 1:
        listed = ", ".join(f"{source} {value}" for source, value in checked.items())
        raise invalid([FieldError("account", f"named differently by {listed}: give one")])
    if checked:
        return next(iter(checked.values()))
    if settings.vtex_account is None:
        raise Refusal(
            400,
            "No account: give it as VTEX clients do (host name, ?an=, or /{account}/api/...) "
            "or set VTEX_ACCOUNT on the relay; nothing was enqueued",
        )
    return settings.vtex_account


def _from_host(settings: Settings, host: str | None) -> str | None:
    """The account a Host header names, if it names one (the port is left out)."""
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.rstrip(".").lower()
    own = settings.relay_hosts()
    if name in own:
        return None
    for relay in own:
        if name.endswith("." + relay):
            label = name[: -len(relay) - 1]
            return label if "." not in label else None
    found = _VTEX_HOST.fullmatch(name)
    if found is None:
        return None
    environment = found.group(2)
    vtex = environment.startswith("vtexcommerce") or environment == settings.vtex_environment
    return found.group(1) if vtex else None
