"""``GET /relay/openapi.json``: the OpenAPI 3.1 document of everything the intake serves.

VTEX's three writes carry VTEX's own request schemas, the ones the sandbox validates with
(``vtex_relay/sandbox/oms-request-schemas.json``, extracted from VTEX's Orders API spec by
``scripts/extract_oms_schemas.py``): one copy in the repository, read here as a plain file.
JSON Schema 2020-12 (``"type": ["string", "null"]``) is OpenAPI 3.1's own schema dialect.
"""

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "sandbox" / "oms-request-schemas.json"
ORDER = "/api/oms/pvt/orders/{orderId}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


def _param(name: str, where: str = "path", description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string"},
        "description": description,
    }


AN = _param("an", "query", "the account, when neither the host name nor a path prefix names it")
REFUSALS = {
    "400": _error("a bad body, path or account; names every bad field; nothing enqueued"),
    "401": _error("not the account's X-VTEX-API-AppKey/AppToken, or an account not served"),
    "503": _error("Redis unreachable: try again after Retry-After (the same request is safe)"),
}


def _write(operation: str, schema: str, summary: str, params: list[str]) -> dict[str, Any]:
    return {
        "operationId": operation,
        "summary": summary,
        "parameters": [_param(name) for name in params] + [AN],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "responses": {
            "200": {
                **_json(
                    "enqueued (or the identical job already was): receipt is the job id",
                    {"$ref": "#/components/schemas/Receipt"},
                ),
                "headers": {"X-Relay-Job-Id": {"schema": {"type": "string"}}},
            },
            **REFUSALS,
            "409": _error("a different invoice holds the order or number: names it"),
            "413": _error("body over the size limit"),
        },
    }


def _read(operation: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    responses = {"200": _json(summary), **REFUSALS, "404": _error("not found")}
    return {
        "operationId": operation,
        "summary": summary,
        "parameters": params,
        "responses": responses,
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The document (built once)."""
    vtex = json.loads(SCHEMAS.read_text())
    schemas = {
        name: {k: v for k, v in vtex[key].items() if k != "$schema"}
        for name, key in (
            ("Invoice", "invoice"),
            ("TrackingNumber", "tracking_number"),
            ("Tracking", "tracking"),
        )
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "exception": {"type": "null"},
                    "fieldsNotListed": {
                        "type": "integer",
                        "description": "bad fields beyond the first 100, not listed",
                    },
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }
    receipt = {
        "type": "object",
        "properties": {
            "date": {"type": "string"},
            "orderId": {"type": "string"},
            "receipt": {"type": "string"},
        },
    }
    order_param = [_param("orderId"), AN]
    paths = {
        ORDER: {
            "get": _read(
                "GetOrder",
                "VTEX's order, passed through with the account's credentials",
                order_param,
            )
        },
        ORDER + "/invoice": {
            "post": _write(
                "InvoiceNotification", "Invoice", "enqueue the invoice POST", ["orderId"]
            )
        },
        ORDER + "/invoice/{invoiceNumber}": {
            "patch": _write(
                "UpdatePartialInvoice",
                "TrackingNumber",
                "enqueue the tracking-number PATCH",
                ["orderId", "invoiceNumber"],
            )
        },
        ORDER + "/invoice/{invoiceNumber}/tracking": {
            "put": _write(
                "UpdateTrackingStatus",
                "Tracking",
                "enqueue the tracking events PUT",
                ["orderId", "invoiceNumber"],
            )
        },
        "/relay/batch": {
            "post": {
                "operationId": "RelayBatch",
                "summary": "JSON lines as `vtex-relay enqueue batch`, all or nothing",
                "parameters": [AN],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json("each job: jobId, kind, account, orderId, invoiceNumber, status"),
                    **REFUSALS,
                    "409": _error("refused because of a racing producer"),
                    "413": _error("body over INTAKE_BATCH_MAX_BYTES"),
                },
            }
        },
        "/relay/orders/{orderId}": {
            "get": _read(
                "RelayOrder",
                "the order's jobs and invoices (`vtex-relay order --json`)",
                order_param,
            )
        },
        "/relay/jobs/{jobId}": {
            "get": _read(
                "RelayJob",
                "a job and its attempts",
                [_param("jobId"), _param("orderId", "query", "the job's order (a live job)"), AN],
            )
        },
        "/relay/health": {
            "get": {
                "operationId": "RelayHealth",
                "summary": "liveness: 200 while the process answers",
                "security": [],
                "responses": {"200": _json("ok")},
            }
        },
        "/relay/ready": {
            "get": {
                "operationId": "RelayReady",
                "summary": "readiness: 200 when Redis answers, else 503",
                "security": [],
                "responses": {"200": _json("ok"), "503": _error("Redis unreachable")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "Metrics",
                "summary": "Prometheus metrics (text format); no body, token or order id",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "503": _error("Redis unreachable"),
                },
            }
        },
        "/relay/openapi.json": {
            "get": {
                "operationId": "RelayOpenApi",
                "summary": "this document",
                "security": [],
                "responses": {"200": _json("the OpenAPI document")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vtex-relay intake",
            "version": "1",
            "description": "VTEX's OMS invoice and tracking calls, enqueued by vtex-relay",
        },
        "paths": paths,
        "components": {
            "schemas": {**schemas, "Receipt": receipt, "Error": error},
            "securitySchemes": {
                "appKey": {"type": "apiKey", "in": "header", "name": "X-VTEX-API-AppKey"},
                "appToken": {"type": "apiKey", "in": "header", "name": "X-VTEX-API-AppToken"},
            },
        },
        "security": [{"appKey": [], "appToken": []}],
    }
