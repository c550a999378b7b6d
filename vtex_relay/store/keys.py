"""The Redis key layout: every key vtex-relay keeps is named here, and only here.

=====================================  =======  ===============================================
key                                    type     holds
=====================================  =======  ===============================================
``vr:{ACCOUNT:ORDER}:order``           hash     head, state, last_seq, its Output invoice
``vr:{ACCOUNT:ORDER}:seen``            string   the order as a worker's last GET read it
``vr:{ACCOUNT:ORDER}:seqs``            hash     seq -> job id, in enqueue order
``vr:{ACCOUNT:ORDER}:dedup``           hash     a job's identity -> job id
``vr:{ACCOUNT:ORDER}:invoices``        hash     invoice number -> "job_id digest type value"
``vr:{ACCOUNT:ORDER}:tracked``         set      invoice numbers given a tracking number
``vr:{ACCOUNT:ORDER}:job:ID``          hash     the job: kind, seq, state, tries, lease
``vr:{ACCOUNT:ORDER}:job:ID:body``     string   its VTEX body (compact JSON), until done
``vr:{ACCOUNT:ORDER}:job:ID:attempts`` list     one JSON record per try
``vr:delayed``                         zset     jobs waiting for a retry or a rate-limit slot
``vr:leases``                          zset     running jobs by lease expiry (and ``PIN``)
``vr:ready``                           zset     jobs with a message out, by when it was pushed
                                                (and ``PIN``)
``vr:dispatched``                      string   numbers given to pushed messages
``vr:dispatched:claimed``              string   the highest such number claimed
``vr:dead``, ``vr:discarded``          hash     job id -> ``ACCOUNT:ORDER``
``vr:lines``                           zset     accounts whose line must be pumped, by when
``vr:accounts``                        set      every account that ever had a job
``vr:account:ACCOUNT:line``            list     the account's waiting jobs (``ACCOUNT:ORDER ID``)
``vr:account:ACCOUNT:out``             set      its jobs with a message out (its window)
``vr:account:ACCOUNT:jobs``            hash     how many of its jobs are in each other state
``vr:account:ACCOUNT:limits``          string   its rate and burst, as the workers last had them
``vr:account:ACCOUNT:rate``            string   the account's token bucket (GCRA)
``vr:account:ACCOUNT:pause``           string   the account's 429 pause, until when
``vr:account:ACCOUNT:heads``           zset     its orders with a live head, by the head's
                                                enqueue time (the oldest job's age)
``vr:account:ACCOUNT:stats``           hash     its counters: jobs enqueued and finished, tries,
                                                reconciliations (``vtex_relay.ops.metrics``)
``vr:durations``                       hash     VTEX request durations: histogram buckets
``vr:workers``                         zset     workers by their last heartbeat
``vr:swept``                           string   when a sweep last ran
``vr:layout``                          string   the key layout's version (``preflight.LAYOUT``)
``vr:acks``                            string   written before a WAIT: its replicas have all
                                                that came before it (``ENQUEUE_WAIT_REPLICAS``)
=====================================  =======  ===============================================

An order's keys share the hash tag ``{ACCOUNT:ORDER}`` (its *tag*). Python builds keys with the
functions below, mostly through ``OrderRef``; the Lua scripts with the functions of ``LUA``,
written from the same names and prepended to every script.
"""

from dataclasses import dataclass
from typing import Any, Literal, get_args

from vtex_relay.jobs import Job

PREFIX = "vr"

DELAYED = f"{PREFIX}:delayed"
LEASES = f"{PREFIX}:leases"
READY = f"{PREFIX}:ready"
DISPATCHED = f"{PREFIX}:dispatched"
CLAIMED = f"{PREFIX}:dispatched:claimed"
DEAD = f"{PREFIX}:dead"
DISCARDED = f"{PREFIX}:discarded"
LINES = f"{PREFIX}:lines"
ACCOUNTS = f"{PREFIX}:accounts"
DURATIONS = f"{PREFIX}:durations"
WORKERS = f"{PREFIX}:workers"
SWEPT = f"{PREFIX}:swept"
LAYOUT = f"{PREFIX}:layout"
# The layout's version: 1, before the metrics (no stamp); 2, heads, stats and a job's "t".
# A change of layout comes with its migration (vtex_relay/store/migrate.py) and a test of it.
LAYOUT_VERSION = 2
ACKS = f"{PREFIX}:acks"

# A member that is never due (score +inf), kept in vr:ready and vr:leases by the sweep. Both take
# a member at every push or claim, at their end (times only grow). Under 128 members Redis keeps
# a sorted set as a listpack, whose insert parses every member's score back from text to find
# its place: with a hundred jobs out, the dearest step of a job in Redis. A member longer than
# zset-max-listpack-value (64 bytes) turns the set into a skiplist, which Redis never turns back
# while the key exists, and this one also keeps the key from ever being emptied (deleted).
# It starts with a space, which no job's member (``ACCOUNT:ORDER ID``) does.
PIN = " keeps this sorted set in Redis's skiplist encoding (vtex_relay/store/keys.py, PIN)"


# The names of an order's keys and of an account's keys: the only ones, here and in the scripts
# (tests/store/test_keys.py reads the scripts for them).
OrderPart = Literal["order", "seen", "seqs", "dedup", "invoices", "tracked"]
AccountPart = Literal["line", "out", "jobs", "limits", "rate", "pause", "heads", "stats"]
ORDER_PARTS: tuple[str, ...] = get_args(OrderPart)
ACCOUNT_PARTS: tuple[str, ...] = get_args(AccountPart)
BODY, ATTEMPTS = ":body", ":attempts"  # a job's hash's key, and these after it


def order(tag: str, name: OrderPart) -> str:
    """A key of the order *tag* (``account:orderId``)."""
    return f"{PREFIX}:{{{tag}}}:{name}"


def job(tag: str, job_id: str) -> str:
    """The hash of job *job_id* of order *tag*."""
    return f"{PREFIX}:{{{tag}}}:job:{job_id}"


def attempts(tag: str, job_id: str) -> str:
    """The list of the job's attempts."""
    return job(tag, job_id) + ATTEMPTS


def body(tag: str, job_id: str) -> str:
    """The job's VTEX body (compact JSON), kept until the job is done."""
    return job(tag, job_id) + BODY


def account(name: str, what: AccountPart) -> str:
    """A key of account *name*."""
    return f"{PREFIX}:account:{name}:{what}"


@dataclass(frozen=True)
class OrderRef:
    """An order, as (account, orderId); ``tag`` is the hash tag its keys share."""

    account: str
    order_id: str

    @classmethod
    def of(cls, job: Job) -> "OrderRef":
        return cls(job.account, job.order_id)

    @classmethod
    def parse(cls, tag: str) -> "OrderRef":
        account, _, order_id = tag.partition(":")
        return cls(account, order_id)

    @property
    def tag(self) -> str:
        return f"{self.account}:{self.order_id}"

    def key(self, name: OrderPart) -> str:
        """A key of the order: ``order``, ``seqs`` or ``dedup`` (``vtex_relay.store.keys``)."""
        return order(self.tag, name)

    def job_key(self, job_id: str) -> str:
        return job(self.tag, job_id)

    def attempts_key(self, job_id: str) -> str:
        return attempts(self.tag, job_id)

    def body_key(self, job_id: str) -> str:
        return body(self.tag, job_id)

    def account_key(self, name: AccountPart) -> str:
        """A key of the order's account: its rate-limit bucket, its 429 pause."""
        return account(self.account, name)

    def member(self, job_id: str) -> str:
        """How a job is named in the global sorted sets (delayed retries, leases)."""
        return f"{self.tag} {job_id}"


def text(value: Any) -> str:
    """A Redis reply as text (redis-py types replies as ``bytes | str``, and gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


LUA = f"""
local READY, DISPATCHED, CLAIMED, LINES = "{READY}", "{DISPATCHED}", "{CLAIMED}", "{LINES}"
local ACCOUNTS, DURATIONS, WORKERS, SWEPT = "{ACCOUNTS}", "{DURATIONS}", "{WORKERS}", "{SWEPT}"
local LAYOUT_KEY, DEAD_JOBS = "{LAYOUT}", "{DEAD}"
local PIN = "{PIN}"
local function order_key(ref, name)
  return "{PREFIX}:{{" .. ref .. "}}:" .. name
end
local function job_key(ref, job_id)
  return "{PREFIX}:{{" .. ref .. "}}:job:" .. job_id
end
local function body_key(jkey)
  return jkey .. "{BODY}"
end
local function attempts_key(jkey)
  return jkey .. "{ATTEMPTS}"
end
local function account_key(account, what)
  return "{PREFIX}:account:" .. account .. ":" .. what
end
"""
