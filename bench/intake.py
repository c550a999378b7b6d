"""The intake's throughput and latency (issue 14): ``python -m bench.intake`` (``make bench``).

One ``vtex-relay serve`` process on a Redis of its own; ``wrk`` (installed by bench/run.sh when
missing) sends single-job invoice POSTs, each for a new order, over keep-alive connections,
and reports requests/s and the latency distribution. In the same run, the Python API's rate
(``enqueue_invoice`` in a loop, one Redis round trip a job) is measured on the same Redis, as
the baseline. wrk, Redis and the intake share this machine's cores: the figures are of the
three together. Then (``bench.intake_batch``) one ``POST /relay/batch`` of 20,000 invoice lines
against ``vtex-relay enqueue batch`` of the same lines. The tables go to bench/intake.md;
``--parts`` measures one of the two and keeps the other's section as it was.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import intake_batch
from bench.harness import ROOT, BenchError, RedisServer
from tests.harness import Intake

KEY, TOKEN = "vtexappkey-bench-INTAKE", "bench-token-not-a-secret"
PARTS = ("requests", "batch")  # single-job POSTs under wrk; a batch request against the CLI
SCRIPT = """
local n = 0
local id = math.random(1, 1e9)
local body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-VTEX-API-AppKey"] = "%s"
wrk.headers["X-VTEX-API-AppToken"] = "%s"
request = function()
  n = n + 1
  return wrk.format("POST", "/api/oms/pvt/orders/b" .. id .. "-" .. n .. "/invoice", nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%.3f %%.3f %%.3f %%.3f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.duration / 1e6))
end
"""
BODY = (
    '{"type":"Output","issuanceDate":"2024-01-31","invoiceNumber":"NF-1","invoiceValue":"2499",'
    '"courier":"Correios","items":[{"id":"123","price":2499,"quantity":1}]}'
)


def api_rate(jobs: int) -> float:
    """Jobs/s of ``enqueue_invoice`` in a loop (this process; settings from the environment)."""
    import json

    from vtex_relay import enqueue_invoice

    body = json.loads(BODY)
    started = time.perf_counter()
    for n in range(jobs):
        enqueue_invoice(f"api-{n}", body)
    return jobs / (time.perf_counter() - started)


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(SCRIPT % (BODY, KEY, TOKEN))
        script.flush()
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not found:
        raise BenchError(f"wrk said:\n{out}")
    requests, errors, p50, p99, most, duration = (float(x) for x in found.groups())
    return {"rps": requests / duration, "errors": errors, "p50": p50, "p99": p99, "max": most}


def requests_section(url: str, server: RedisServer, args: argparse.Namespace) -> str:
    """wrk's runs and the Python API's rate, as the markdown section of single-job POSTs."""
    wrk(url, 3, 16)  # warm-up
    rows = []
    for connections in args.connections:
        server.client().flushall()
        rows.append((connections, wrk(url, args.seconds, connections)))
    server.client().flushall()
    api = api_rate(args.api_jobs)
    server.client().flushall()
    lines = [
        "# The intake (`vtex-relay serve`): single-job invoice POSTs",
        "",
        "`python -m bench.intake` (part of `make bench`): one intake process, `wrk -t1` with "
        "keep-alive connections, each request a new order's invoice; baseline: the Python API "
        "(`enqueue_invoice` loop) on the same Redis in the same run. wrk, Redis and the intake "
        f"share the machine's {os.cpu_count()} cores.",
        "",
        "| client | requests/s | p50 | p99 | max | errors | vs Python API |",
        "|---|---|---|---|---|---|---|",
    ]
    for connections, r in rows:
        lines.append(
            f"| wrk, {connections} connections, {args.seconds} s | {r['rps']:,.0f} | "
            f"{r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['max']:.1f} ms | {r['errors']:.0f} | "
            f"{r['rps'] / api:.2f}x |"
        )
    lines.append(
        f"| Python API, `enqueue_invoice` loop, {args.api_jobs:,} jobs | {api:,.0f} jobs/s "
        "| | | | | 1.00x |"
    )
    lines += ["", "Target (issue 14): at least 2,000 requests/s with p99 under 50 ms."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure; the file's other section is kept as it was",
    )
    parser.add_argument("--quick", action="store_true", help="short wrk runs, one batch run")
    parser.add_argument("--seconds", type=int, default=None, help="per wrk run (15; quick 3)")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--api-jobs", type=int, default=None, help="10,000 (quick 2,000)")
    parser.add_argument("--batch-jobs", type=int, default=20_000)
    parser.add_argument("--batch-runs", type=int, default=None, help="3 (quick 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "intake.md")
    args = parser.parse_args()
    args.seconds = args.seconds or (3 if args.quick else 15)
    args.api_jobs = args.api_jobs or (2_000 if args.quick else 10_000)
    args.batch_runs = args.batch_runs or (1 if args.quick else 3)
    if "requests" in args.parts and shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (bench/run.sh installs it)")
    redis_server = RedisServer().start()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "VTEX_ACCOUNT": "benchstore",
        "VTEX_APP_KEY": KEY,
        "VTEX_APP_TOKEN": TOKEN,
        "VTEX_BASE_URL": "http://127.0.0.1:9/{account}",
    }
    os.environ.update(env)
    intake = Intake(env=env, cwd=ROOT).start()
    requests = batches = None
    try:
        run = "quick" if args.quick else "full"
        footer = (
            f"Command: `{shlex.join(['python', '-m', 'bench.intake', *sys.argv[1:]])}` ({run} "
            f"run). Python {sys.version.split()[0]}, Redis {redis_server.version()}."
        )
        if "requests" in args.parts:
            requests = requests_section(intake.url, redis_server, args) + " " + footer
        if "batch" in args.parts:
            credentials = {"X-VTEX-API-AppKey": KEY, "X-VTEX-API-AppToken": TOKEN}
            batches = intake_batch.section(
                intake.url,
                redis_server.client(),
                env,
                credentials,
                args.batch_jobs,
                args.batch_runs,
                footer,
            )
    finally:
        intake.stop()
        redis_server.stop()
    old = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(intake_batch.merge(old, requests, batches))
    print("\n\n".join(part for part in (requests, batches) if part))
    return 0


if __name__ == "__main__":
    sys.exit(main())
