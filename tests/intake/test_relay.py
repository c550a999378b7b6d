"""The relay's own endpoints: the batch (all or nothing), the order and job views, and the
OpenAPI document, checked for structure and against every route the intake serves."""

import json

import httpx
import redis
from jsonschema import Draft202012Validator

from tests.intake_support import INVOICE, TRACKING_NUMBER, client, vtex_error
from vtex_relay.intake import openapi, routes

NDJSON = {"Content-Type": "application/x-ndjson"}


def lines(*jobs: dict[str, object]) -> bytes:
    return b"\n".join(json.dumps(job).encode() for job in jobs) + b"\n"


def test_a_batch_is_enqueued_in_line_order(intake: str, redis_client: redis.Redis) -> None:
    number = INVOICE["invoiceNumber"]
    batch = lines(
        {"kind": "invoice", "orderId": "o-b", "body": INVOICE},
        {
            "kind": "tracking-number",
            "orderId": "o-b",
            "invoiceNumber": number,
            "body": TRACKING_NUMBER,
        },
    )
    with client(intake) as http:
        answer = http.post("/relay/batch?an=batchstore", content=batch, headers=NDJSON)
        assert answer.status_code == 200, answer.text
        jobs = answer.json()["jobs"]
        assert [(j["kind"], j["account"], j["status"]) for j in jobs] == [
            ("invoice", "batchstore", "enqueued"),
            ("tracking-number", "batchstore", "enqueued"),
        ]
        order = http.get("/relay/orders/o-b?an=batchstore").json()
        assert [j["jobId"] for j in order["jobs"]] == [j["jobId"] for j in jobs]
        job = http.get(f"/relay/jobs/{jobs[0]['jobId']}?orderId=o-b&an=batchstore").json()
        assert (job["jobId"], job["state"]) == (jobs[0]["jobId"], "ready")
        vtex_error(http.get("/relay/orders/o-none?an=batchstore"), 404)
        vtex_error(http.get(f"/relay/jobs/{jobs[0]['jobId']}?an=batchstore"), 404)


def test_one_bad_line_and_nothing_is_enqueued(intake: str, redis_client: redis.Redis) -> None:
    batch = lines(
        {"kind": "invoice", "orderId": "o-1", "body": INVOICE},
        {"kind": "invoice", "orderId": "o-2", "body": {**INVOICE, "invoiceValue": "1.5"}},
        {"kind": "invoice", "orderId": "o-3", "account": "otherstore", "body": INVOICE},
    )
    with client(intake) as http:
        answer = http.post("/relay/batch", content=batch + b"\xff\n", headers=NDJSON)
    vtex_error(answer, 400)
    fields = [f["field"] for f in answer.json()["error"]["fields"]]
    assert fields == ["line 2: body.invoiceValue", "line 3: account", "line 4: line"]
    assert redis_client.dbsize() == 0


def test_the_openapi_document_is_valid_and_lists_every_route(intake: str) -> None:
    document = httpx.get(intake + "/relay/openapi.json").json()
    assert document == json.loads(json.dumps(openapi.document()))
    assert document["openapi"].startswith("3.1")
    assert {"title", "version"} <= document["info"].keys()
    schemes = document["components"]["securitySchemes"]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    served = set()
    for template, methods in routes.TEMPLATES:
        names = iter(("{orderId}", "{invoiceNumber}") if template[0] == "api" else ("{x}",))
        path = "/" + "/".join(part if part else next(names) for part in template)
        served |= {(path, method.lower()) for method in methods}
    relay = {
        "/relay/orders/{x}": "/relay/orders/{orderId}",
        "/relay/jobs/{x}": "/relay/jobs/{jobId}",
    }
    served = {(relay.get(p, p), m) for p, m in served}
    documented = {(p, m) for p, item in document["paths"].items() for m in item}
    assert documented == served
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["responses"], path
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}
            for requirement in operation.get("security", document["security"]):
                assert set(requirement) <= schemes.keys()


def test_a_line_with_an_unpaired_surrogate_is_a_bad_line_not_a_500(
    intake: str, redis_client: redis.Redis
) -> None:
    line = b'{"kind": "invoice", "orderId": "o-1", "body": {}, "\\udfff": 1}\n'
    with client(intake) as http:
        answer = http.post("/relay/batch?an=otherstore", content=line, headers=NDJSON)
    assert "not text" in vtex_error(answer, 400)
    assert answer.json()["error"]["fields"][0]["field"] == "line 1: line"
