"""Flower safe by default: ``celery -A worker.app flower`` listens on 127.0.0.1 unless told
otherwise, refuses a non-loopback address without authentication, and takes ``--port 5555``
as well as ``--port=5555``, each mistake said in one line rather than a traceback.

Flower has no setting for "refuse to start unauthenticated", and its option parser (tornado's)
takes only ``--name=value``: so the command's ``apply_options`` is wrapped, once Flower has
loaded it (Celery imports every ``celery.commands`` entry point before it loads this app). The
wrapper changes nothing for the other Celery commands, which never call it.
"""

import ipaddress
import sys
from collections.abc import Callable, Sequence
from typing import Any

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def install() -> None:
    """Wrap ``flower.command.apply_options`` if Flower is loaded (else do nothing)."""
    command: Any = sys.modules.get("flower.command")
    if command is None or getattr(command.apply_options, "guarded", False):
        return
    original: Callable[[str, Sequence[str]], None] = command.apply_options

    def apply_options(prog_name: str, argv: Sequence[str]) -> None:
        from tornado.options import Error, options

        try:
            original(prog_name, joined(argv, options))
        except (Error, ValueError) as exc:
            _refuse(f"Flower: bad option: {exc} (give options as --name=value or --name value)")
        if not options.address:
            options.address = "127.0.0.1"
        if not loopback(options.address) and not (options.basic_auth or options.auth):
            _refuse(
                f"Flower refuses to listen on {options.address} without authentication: set "
                "FLOWER_BASIC_AUTH=user:password (or --basic-auth), or keep the default "
                "--address=127.0.0.1"
            )

    apply_options.guarded = True  # type: ignore[attr-defined]
    command.apply_options = apply_options


def joined(argv: Sequence[str], options: Any) -> list[str]:
    """``--port 5555`` as ``--port=5555``, for each known option that takes a value."""
    known = options._options  # tornado has no public way to ask an option's type
    out: list[str] = []
    items = list(argv)
    while items:
        arg = items.pop(0)
        name = arg.lstrip("-").replace("-", "_")
        option = known.get(name) or known.get(name.replace("_", "-"))
        takes_value = option is not None and option.type is not bool
        if arg.startswith("--") and "=" not in arg and takes_value and items:
            arg = f"{arg}={items.pop(0)}"
        out.append(arg)
    return out


def loopback(address: str) -> bool:
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may be any interface's


def _refuse(message: str) -> None:
    print(f"vtex-relay: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
