"""What one job costs Redis on its way through: the commands of its enqueue, its claim and its
finish (those run inside the scripts included), counted by Redis (INFO commandstats), for an
invoice of an order of its own, as a worker's try records it. A later change cannot raise it
unnoticed: the test fails above the budget. (Celery's own BRPOP of the message is left out.)"""

import uuid

import redis

from tests.seed import invoice
from vtex_relay.jobs import Attempt, Job
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.ordering import Ordering

# Commands a job, each script's own commands included. Measured 55.0 (enqueue 26, claim 12,
# finish 17); it was 77.0 (36, 22, 19) before the scripts read each hash once, read the clock
# once, and a job just enqueued was dispatched without reading back what its enqueue wrote.
BUDGET = 56
JOBS = 200


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_config",))


def test_the_commands_one_job_costs(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    jobs = [
        Job(kind="invoice", order_id=f"o-{n}", account="budget", body=invoice(f"NF-{n}"))
        for n in range(JOBS + 1)
    ]
    list(ordering.enqueue(jobs[:1]))  # scripts loaded, layout stamped
    attempt = Attempt(at="2024-01-01T00:00:00Z", outcome="delivered").model_dump_json()
    steps = {"enqueue": 0, "claim": 0, "finish": 0}
    for job in jobs[1:]:
        ref, token = OrderRef.of(job), uuid.uuid4().hex
        redis_client.config_resetstat()
        list(ordering.enqueue([job]))
        steps["enqueue"] += commands(redis_client) - 1  # less INFO itself
        redis_client.config_resetstat()
        assert ordering.claim(ref, job.job_id, token, 30).verdict == "run"
        steps["claim"] += commands(redis_client) - 1
        redis_client.config_resetstat()
        kept = ordering.finish(
            ref,
            job.job_id,
            token,
            "done",
            attempt,
            retention_seconds=3600,
            kind=job.kind,
            result="2xx",
            durations="invoice 0.1 0.05",
        )
        assert kept
        steps["finish"] += commands(redis_client) - 1
    per_job = {step: count / JOBS for step, count in steps.items()}
    total = sum(per_job.values())
    shown = ", ".join(f"{step} {count:.1f}" for step, count in per_job.items())
    print(f"\nRedis commands per job: {total:.1f} ({shown})")
    assert total <= BUDGET
