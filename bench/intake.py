"""The intake's throughput and latency (issue 14): ``python -m bench.intake`` (``make bench``).

One ``vtex-relay serve`` process on a Redis of its own; ``wrk`` (installed by bench/run.sh when
missing) sends single-job invoice POSTs, each for a new order, over keep-alive connections,
and reports requests/s and the latency distribution. In the same run, the Python API's rate
(``enqueue_invoice`` in a loop, one Redis round trip a job) is measured on the same Redis, as
the baseline. wrk, Redis and the intake share this machine's cores: the figures are of the
three together. The table goes to bench/intake.md.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench.harness import ROOT, BenchError, RedisServer
from vtex_relay.testing import Intake

KEY, TOKEN = "vtexappkey-bench-INTAKE", "bench-token-not-a-secret"
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--api-jobs", type=int, default=10_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
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
    redis_version = redis_server.version()
    rows = []
    try:
        wrk(intake.url, 3, 16)  # warm-up
        for connections in args.connections:
            redis_server.client().flushall()
            rows.append((connections, wrk(intake.url, args.seconds, connections)))
        redis_server.client().flushall()
        api = api_rate(args.api_jobs)
    finally:
        intake.stop()
        redis_server.stop()
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
    lines += [
        "",
        f"Target (issue 14): at least 2,000 requests/s with p99 under 50 ms. "
        f"Python {sys.version.split()[0]}, Redis {redis_version}.",
    ]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "intake.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
