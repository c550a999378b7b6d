"""``GET /relay/openapi.json``: the OpenAPI 3.1 document of everything the intake serves,
generated from what the intake runs, so that it promises what is enforced and nothing else.

Each fact comes from its one place: the paths and methods from the route table
(``routes.documented``; VTEX's three writes from ``operations.OPERATIONS``), the request
bodies from the pydantic models the intake validates with (``Operation.model``: their
patterns, lengths and closed objects are the validators' own rules), the path and query
parameters from ``identifiers``, the error shape from ``answers.VtexError`` (every refusal is
serialised through it). This module adds only which route answers which status, and why.
JSON Schema 2020-12 is OpenAPI 3.1's own dialect. ``tests/intake/test_contract.py`` runs
Schemathesis against a real intake with this document: a request it allows is accepted, one
it does not is refused, and every answer is one it describes.
"""

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from vtex_relay.credentials import KEY_HEADER, TOKEN_HEADER
from vtex_relay.identifiers import ACCOUNT_SCHEMA, SEGMENT_SCHEMA
from vtex_relay.intake import routes
from vtex_relay.intake.answers import VtexError
from vtex_relay.intake.writes import JOB_ID_HEADER
from vtex_relay.models import Kind, Receipt
from vtex_relay.operations import OPERATIONS, Operation
from vtex_relay.produce.api import IDEMPOTENCY_KEY_PATTERN

Schema = dict[str, Any]
HEX = "[0-9a-f]"
JOB_ID = {
    "type": "string",
    "pattern": f"^{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}$",
    "description": "a job id (a UUID, as the relay makes them)",
}
OK = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
AN = {
    "name": "an",
    "in": "query",
    "required": False,
    "schema": ACCOUNT_SCHEMA,
    "description": "the account (any case), when neither a /{account}/api/... path prefix nor "
    "the host name names it (else VTEX_ACCOUNT); sources naming different accounts: 400",
}
PATH_PARAMS = {"orderId": SEGMENT_SCHEMA, "invoiceNumber": SEGMENT_SCHEMA, "jobId": JOB_ID}
WRITES = {str(kind): op for kind, op in OPERATIONS.items()}  # by route name: VTEX's writes
OPEN = ("health", "ready", "metrics", "openapi")  # answered without an account or credentials
AUTHENTICATED = (400, 401, 503)
# What each status means, where a route does not say more.
MEANING = {
    400: "a bad path, account or body; error.fields names each bad field; nothing was enqueued",
    401: f"not the account's {KEY_HEADER} and {TOKEN_HEADER}, or an account not served",
    408: "the body was not received within INTAKE_READ_TIMEOUT",
    413: "the body is over its limit (MAX_BODY_BYTES as compact JSON; a batch, its own)",
    431: "a header line (name: value) over INTAKE_MAX_HEADER_BYTES",
    500: "a bug of the relay's (in its log); the process goes on",
    503: "Redis unreachable or the bodies in flight at their limit (try again after "
    "Retry-After: the same request is safe), or the relay has no credentials configured",
}


class BatchJob(BaseModel):
    """One line's job: what it became (``vtex-relay enqueue batch --json``)."""

    jobId: str
    kind: Kind
    account: str
    orderId: str
    invoiceNumber: str | None
    status: Literal["enqueued", "duplicate"]


class BatchAnswer(BaseModel):
    jobs: list[BatchJob]


def _ref(model: type[BaseModel]) -> Schema:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    return answer | ({"headers": headers} if headers else {})


def _responses(ok: Schema, *statuses: int, **said: str) -> Schema:
    """*ok* as 200, then each status in VTEX's error shape (*said*: ``s404="..."``)."""
    answers = {"200": ok}
    for status in sorted({*statuses, 431, 500}):
        retry = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
        description = said.get(f"s{status}", MEANING.get(status, ""))
        answers[str(status)] = _json(_ref(VtexError), description, retry if status == 503 else None)
    return answers


def _write(op: Operation) -> Schema:
    statuses, said = [*AUTHENTICATED, 408, 413], {}
    if op.posts_invoice:
        statuses.append(409)
        said["s409"] = "a different invoice holds the order or its number: names it"
    if op.needs_invoice_number:
        statuses.append(404)
        said["s404"] = "the order has no invoice of that number (VTEX's answer too)"
    if op.needs_tracking_number:
        statuses.append(409)
        said["s409"] = "the invoice has no tracking number yet: send it first"
    body = _ref(op.model)
    receipt = _ref(Receipt) | {"required": ["date", "orderId", "receipt"]}
    job_id = {JOB_ID_HEADER: {"required": True, "schema": JOB_ID}}
    ok = _json(receipt, "enqueued, or the identical request was: receipt is the job id", job_id)
    return {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": f"VTEX's {op.method} {op.path}, enqueued for delivery. The body: "
        f"{op.model.__name__}, what the relay enforces (within VTEX's own schema).",
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses(ok, *statuses, **said),
    }


def _batch_line(kind: Kind, op: Operation) -> Schema:
    nullable = {"type": ["string", "null"]}
    properties = {
        "kind": {"const": kind},
        "orderId": SEGMENT_SCHEMA,
        "invoiceNumber": SEGMENT_SCHEMA if op.needs_invoice_number else {"type": "null"},
        "account": ACCOUNT_SCHEMA | nullable | {"description": "absent or null: the request's"},
        "idempotencyKey": nullable | {"pattern": f"^{IDEMPOTENCY_KEY_PATTERN}$"},
        "body": _ref(op.model),
    }
    required = ["kind", "orderId", "body"] + ["invoiceNumber"] * op.needs_invoice_number
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _batch() -> Schema:
    lines = {"anyOf": [_batch_line(kind, op) for kind, op in OPERATIONS.items()]}
    body = {"application/x-ndjson": {"schema": {"type": "array", "items": lines}}}
    return {
        "operationId": "RelayBatch",
        "summary": "Jobs as JSON lines (vtex-relay enqueue batch's format), all or nothing",
        "description": "Each item is one line of the body, a JSON object; blank lines are "
        "skipped. Also taken as application/jsonl, text/plain, or application/json for a single "
        "line. Every line is checked before any is enqueued; INTAKE_BATCH_MAX_BYTES at most.",
        "requestBody": {"required": True, "content": body},
        "responses": _responses(
            _json(_ref(BatchAnswer), "every line enqueued (or an identical job already was)"),
            *(*AUTHENTICATED, 403, 408, 409, 413),
            s400="bad lines, each named (line N: field); nothing was enqueued",
            s403="every bad line is for another account than the request's",
            s409="every line is valid, but some conflict with the relay's jobs (a different "
            "invoice, an unknown one, no tracking number yet) or a racing producer's",
        ),
    }


def _get_order() -> Schema:
    responses = _responses(
        _json({"type": "object"}, "VTEX's order"),
        *(*AUTHENTICATED, 502, 504),
        s502="VTEX's answer could not be read whole (or is over 16 MiB)",
        s504="VTEX, or the account's INTAKE_ACCOUNT_CONNECTIONS connections, too slow",
    )
    passed = "VTEX's answer as it came (status, body, Content-Type, Retry-After), or the relay's"
    for status in ("401", "403", "404", "429", "500", "503"):  # VTEX's, passed through
        responses[status] = _json({"type": "object"}, passed)
    return {
        "operationId": "GetOrder",
        "summary": "VTEX's order, passed through with the account's own credentials",
        "responses": responses,
    }


def _view(operation_id: str, summary: str, required: list[str], not_found: str) -> Schema:
    ok = _json({"type": "object", "required": required}, summary)
    responses = _responses(ok, *AUTHENTICATED, 404, s404=not_found)
    return {"operationId": operation_id, "summary": summary, "responses": responses}


def _own(operation_id: str, summary: str, ok: Schema, *statuses: int) -> Schema:
    said = {"s503": "Redis does not answer"}
    return {"operationId": operation_id, "summary": summary, "security": []} | {
        "responses": _responses(ok, *statuses, **said)
    }


def _operation(name: str) -> Schema:
    write = WRITES.get(name)
    if write is not None:
        return _write(write)
    text = {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
    built: dict[str, Callable[[], Schema]] = {
        "batch": _batch,
        "get-order": _get_order,
        "relay-order": lambda: _view(
            "RelayOrder",
            "The order's jobs and invoices (vtex-relay order --json)",
            ["account", "orderId", "state", "jobs", "invoices"],
            "the relay never had the order",
        ),
        "relay-job": lambda: _view(
            "RelayJob",
            "A job and its attempts (a live job is found through its order: ?orderId=)",
            ["jobId", "account", "orderId", "kind", "state"],
            "no such job of the account",
        ),
        "health": lambda: _own("RelayHealth", "Liveness: 200 while it answers", _json(OK, "up")),
        "ready": lambda: _own("RelayReady", "Readiness: Redis answers", _json(OK, "ready"), 503),
        "metrics": lambda: _own("Metrics", "Prometheus metrics (text format)", text, 503),
        "openapi": lambda: _own("RelayOpenApi", "This document", _json({"type": "object"}, "")),
    }
    return built[name]()


def _parameters(name: str, path: str) -> list[Schema]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    params = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMS[n]} for n in names]
    if name == "relay-job":  # a live job is found through its order
        params.append({"name": "orderId", "in": "query", "schema": SEGMENT_SCHEMA})
    return [*params, AN]


@lru_cache(maxsize=1)
def document() -> Schema:
    """The document (built once)."""
    models: list[type[BaseModel]] = [op.model for op in OPERATIONS.values()]
    models += [Receipt, VtexError, BatchAnswer]
    _, found = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, Schema] = {}
    for path, method, name in routes.documented():
        operation = _operation(name)
        if name not in OPEN:
            operation["parameters"] = _parameters(name, path)
        paths.setdefault(path, {})[method.lower()] = operation
    description = (
        "VTEX's OMS invoice and tracking calls, enqueued by vtex-relay, and the relay's own. "
        "The account: a /{account}/api/... path prefix (the form of VTEX's api.vtex.com/{account} "
        "base URL, with the same paths below it), the an query parameter, the host name "
        "({account}.vtexcommercestable.com.br, {account}.INTAKE_HOST), else VTEX_ACCOUNT. "
        "Any path with a '%' or a '.' or '..' segment is 400, no route 404, another method 405."
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "vtex-relay intake", "version": "1", "description": description},
        "paths": paths,
        "components": {
            "schemas": found["$defs"],
            "securitySchemes": {
                "appKey": {"type": "apiKey", "in": "header", "name": KEY_HEADER},
                "appToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": TOKEN_HEADER,
                    "description": "the account's app token, or its intakeKey",
                },
            },
        },
        "security": [{"appKey": [], "appToken": []}],
    }
