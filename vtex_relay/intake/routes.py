"""Routing on the raw request path, as the client sent it, before any percent-decoding.

A server that decodes first turns ``%2F`` into a path separator and ``%2E%2E`` into ``..``, so
``/orders/1%2F..%2F2/invoice`` could reach another order's route. Here the raw path is split
on ``/`` and a path with any ``%`` is refused outright: no valid account, order id or invoice
number contains one (``vtex_relay.identifiers``), so nothing a client needs is lost. The
captured segments are then checked by the producer API like any other input (``..`` is not
an order id).
"""

from typing import NamedTuple

from vtex_relay.errors import Refusal
from vtex_relay.operations import OPERATIONS, ORDER_PATH

P = None  # a parameter segment in a template


def _template(path: str) -> tuple[str | None, ...]:
    return tuple(P if s.startswith("{") else s for s in path.strip("/").split("/"))


def _params(path: str) -> tuple[str, ...]:
    return tuple(s[1:-1] for s in path.strip("/").split("/") if s.startswith("{"))


# (template, {method: route name}); parameters are named in _PARAMS, in order. VTEX's writes
# are routed by their job kind (``operations.OPERATIONS``).
TEMPLATES: tuple[tuple[tuple[str | None, ...], dict[str, str]], ...] = (
    (_template(ORDER_PATH), {"GET": "get-order"}),
    *((_template(op.path), {op.method: str(kind)}) for kind, op in OPERATIONS.items()),
    (("relay", "batch"), {"POST": "batch"}),
    (("relay", "orders", P), {"GET": "relay-order"}),
    (("relay", "jobs", P), {"GET": "relay-job"}),
    (("relay", "health"), {"GET": "health"}),
    (("relay", "ready"), {"GET": "ready"}),
    (("metrics",), {"GET": "metrics"}),
    (("relay", "openapi.json"), {"GET": "openapi"}),
)
_PARAMS: dict[str, tuple[str, ...]] = {
    "get-order": _params(ORDER_PATH),
    **{kind: _params(op.path) for kind, op in OPERATIONS.items()},
    "relay-order": ("orderId",),
    "relay-job": ("jobId",),
}


class Route(NamedTuple):
    """A matched route: its name, the account of a ``/{account}/api/...`` prefix (else None)
    and its path parameters, raw (still to be validated)."""

    name: str
    path_account: str | None
    params: dict[str, str]


def route(method: str, raw_path: str) -> Route:
    """The route of *method* and *raw_path* (query included or not); ``Refusal`` 400 for a
    percent-encoded path, 404 for no route, 405 for a route without that method."""
    path = raw_path.partition("?")[0]
    if "%" in path:
        raise Refusal(
            400,
            "Invalid request path: percent-encoded characters are refused (an encoded '/' or "
            "'..' could change the URL); order ids and invoice numbers are letters, digits, "
            "'-', '_' and '.'; nothing was enqueued",
        )
    segments = path.split("/")[1:] if path.startswith("/") else []
    if any(segment in (".", "..") for segment in segments):
        # Refused before routing: a dot segment would otherwise shift the parameters.
        raise Refusal(400, "Invalid request path: '.' and '..' segments are refused")
    account = None
    if len(segments) > 1 and segments[1] == "api" and segments[0] not in ("api", "relay"):
        account, segments = segments[0], segments[1:]  # VTEX's api.vtex.com/{account}/ form
    for template, methods in TEMPLATES:
        if len(template) != len(segments):
            continue
        if all(t is None or t == s for t, s in zip(template, segments, strict=True)):
            name = methods.get(method)
            if name is None:
                allowed = ", ".join(methods)
                raise Refusal(405, f"Method {method} not allowed here", headers={"Allow": allowed})
            values = [s for t, s in zip(template, segments, strict=True) if t is None]
            return Route(name, account, dict(zip(_PARAMS.get(name, ()), values, strict=True)))
    raise Refusal(404, f"No route for {method} {path[:200]}")


def documented() -> list[tuple[str, str, str]]:
    """``(path, method, route name)`` of every route, the path a template with its parameters
    named (``/relay/jobs/{jobId}``): the paths of the OpenAPI document (``openapi``)."""
    found = []
    for template, methods in TEMPLATES:
        for method, name in methods.items():
            names = iter(_PARAMS.get(name, ()))
            parts = (s if s is not None else "{" + next(names) + "}" for s in template)
            found.append(("/" + "/".join(parts), method, name))
    return found
