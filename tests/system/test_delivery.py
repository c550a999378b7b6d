"""End to end: producers enqueue, a real worker process delivers, the sandbox receives.

Each test asserts what VTEX (the sandbox) actually received — method, path, body — over real
HTTP, with Redis and the worker as real processes.
"""

import json
import subprocess
import sys
from typing import Any

from tests.processes import ROOT, Worker
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.sandbox import RecordedRequest, SandboxControl

EXAMPLES = ROOT / "examples"
ORDER = "1172452900788-01"
OMS = f"/api/oms/pvt/orders/{ORDER}"


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return body


def received(
    sandbox: SandboxControl, count: int, *, order_id: str = ORDER, timeout: float = 15
) -> list[RecordedRequest]:
    """Wait until the sandbox has answered *count* requests for the order; return them."""

    def answered(control: SandboxControl) -> list[RecordedRequest] | None:
        got = [r for r in control.requests(order_id=order_id) if r.method != "GET"]
        return got if len(got) >= count else None

    return sandbox.wait_for(answered, timeout=timeout)


def test_the_seed_examples_arrive_as_post_patch_put(
    sandbox: SandboxControl, worker: Worker
) -> None:
    enqueue_invoice(ORDER, example("invoice"))
    enqueue_tracking_number(ORDER, "9999", example("tracking-number"))
    enqueue_tracking(ORDER, "9999", example("tracking"))
    requests = received(sandbox, 3)

    assert [(r.method, r.path, r.status) for r in requests] == [
        ("POST", f"{OMS}/invoice", 200),
        ("PATCH", f"{OMS}/invoice/9999", 200),
        ("PUT", f"{OMS}/invoice/9999/tracking", 200),
    ]
    assert all(r.account == "teststore" for r in requests)
    invoice = {k: v for k, v in example("invoice").items() if k != "courier"}
    assert requests[0].body == invoice
    assert requests[1].body == {**example("tracking-number"), "dispatchedDate": None}
    assert requests[2].body == {**example("tracking"), "deliveredDate": None}

    [package] = sandbox.order(ORDER, "teststore")["order"]["packageAttachment"]["packages"]
    assert package["invoiceNumber"] == "9999"
    assert package["invoiceValue"] == 10000
    assert package["trackingNumber"] == "87658"
    assert [e["description"] for e in package["courierStatus"]["data"]] == [
        "Coletado pela transportadora",
        "A caminho de Curitiba",
    ]


def test_the_cli_and_a_batch_file_are_delivered(sandbox: SandboxControl, worker: Worker) -> None:
    enqueue = [sys.executable, "-m", "vtex_relay", "enqueue"]
    done = subprocess.run(
        [*enqueue, "invoice", "o-cli", str(EXAMPLES / "invoice.json"), "--account", "clistore"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    [request] = received(sandbox, 1, order_id="o-cli")
    assert (request.method, request.account, request.path) == (
        "POST",
        "clistore",
        "/api/oms/pvt/orders/o-cli/invoice",
    )
    assert done.stdout.strip() in worker.log()  # the worker logged the job id it delivered

    subprocess.run([*enqueue, "batch", str(EXAMPLES / "batch.jsonl")], cwd=ROOT, check=True)
    requests = received(sandbox, 3, order_id="1172452900788-01")
    assert [(r.method, r.status) for r in requests] == [("POST", 200), ("PATCH", 200), ("PUT", 200)]
    assert requests[2].body["deliveredDate"] == "2024-02-03 14:10"


def test_a_refused_call_is_logged_with_vtex_message(
    sandbox: SandboxControl, worker: Worker
) -> None:
    job_id = enqueue_tracking_number("o-missing", "NF-404", example("tracking-number"))
    [request] = received(sandbox, 1, order_id="o-missing")
    assert request.status == 404
    log = worker.wait_for_log(f"(job {job_id}): refused by VTEX")
    assert "HTTP 404" in log


def test_no_cookie_goes_from_one_call_to_the_next(sandbox: SandboxControl, worker: Worker) -> None:
    """VTEX (or a proxy before it) sets a cookie on every answer: a worker thread's HTTP client
    must not send one account's cookie on another account's call, nor any cookie at all."""
    sandbox.set_faults(set_cookies=True)
    body = example("invoice")
    number = body["invoiceNumber"]
    for account in ("storea", "storeb"):
        enqueue_invoice(ORDER, body, account=account)
        enqueue_tracking_number(ORDER, number, example("tracking-number"), account=account)
    got = received(sandbox, 4)
    assert sorted((r.account, r.method, r.status) for r in got) == [
        ("storea", "PATCH", 200),
        ("storea", "POST", 200),
        ("storeb", "PATCH", 200),
        ("storeb", "POST", 200),
    ]
    assert [r.cookie for r in got] == [None] * 4
