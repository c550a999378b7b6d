-- Shared by every vtex-relay script. Prepended by vtex_relay/store/ordering.py after the key layout
-- of vtex_relay/store/keys.py (READY, DISPATCHED, CLAIMED, LINES, order_key, job_key, account_key)
-- and build_message (vtex_relay/store/messages.py).
-- Keys of one order share the hash tag {account:orderId}, its "ref".
-- Invariant: an order has at most one job that is waiting, ready, running, retrying, throttled
-- or dead: its head.

-- Set by each script that may dispatch, before it does: the Celery queue and the most messages
-- an account may have in it (its dispatch window).
local QUEUE, WINDOW

-- Every time comes from Redis's clock, so workers on machines with skewed clocks agree; read
-- once a script (it runs as one step: one moment). NOW_TEXT is the same moment as text, made
-- from TIME's own digits: a number handed to redis.call is formatted with snprintf, which costs
-- Redis more than most commands do. (So are the counts below handed over as text.)
local NOW, NOW_TEXT
local function now()
  if not NOW then
    local t = redis.call("TIME")
    NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000
    NOW_TEXT = t[1] .. "." .. string.sub("00000" .. t[2], -6)
  end
  return NOW
end

local function now_text()
  now()
  return NOW_TEXT
end

local function account_of(ref)
  return string.match(ref, "^([^:]*)")
end

local function split(member)
  local ref, job_id = string.match(member, "^(.-) (.+)$")
  return ref, job_id
end

-- The account's live jobs by state (`vtex-relay accounts`). Done and discarded jobs are
-- records, not counted; waiting and ready jobs are counted by their account's line (LLEN) and
-- window (SCARD), which saves two writes each time a job gets its turn or its message.
local LIVE = {queued = true, running = true, retrying = true, throttled = true, dead = true}

-- *delta*: a number, or text ("1", "-1").
local function count(ref, field, delta)
  if delta ~= 0 then
    redis.call("HINCRBY", account_key(account_of(ref), "jobs"), field, delta)
  end
end

local function set_state(jkey, ref, from, to)
  redis.call("HSET", jkey, "state", to)
  if from ~= to then
    if LIVE[from] then count(ref, from, "-1") end
    if LIVE[to] then count(ref, to, "1") end
  end
end

-- Metrics (vtex_relay/ops/metrics.py reads them): an account's counters, and the enqueue time of
-- each of its orders' live heads (the oldest job not yet delivered or dead is one of them).
local function stat(ref, field)
  redis.call("HINCRBY", account_key(account_of(ref), "stats"), field, "1")
end

local function head_is(ref, job_id, t)
  t = t or redis.call("HGET", job_key(ref, job_id), "t") or now()
  redis.call("ZADD", account_key(account_of(ref), "heads"), t, ref)
end

local function no_head(ref)
  redis.call("ZREM", account_key(account_of(ref), "heads"), ref)
end

-- Jobs queued behind a dead head ("held"): the order's jobs after its head.
local function behind_head(ref)
  local order = redis.call("HMGET", order_key(ref, "order"), "last_seq", "head")
  return tonumber(order[1] or "0") - tonumber(order[2] or "0")
end

-- Push the job's message onto the Celery queue (built from its stored body and envelope),
-- with a fresh delivery tag so that kombu never confuses two deliveries of one job.
--
-- A message can still be lost after the push: kombu takes it off the list (BRPOP) and keeps
-- no copy in Redis (ack emulation is off, worker/app.py), so a worker killed before the claim
-- loses it. Every job with a message out is therefore listed in READY with the time of the
-- push, until claimed, and the sweep pushes again one that stayed there too long (sweep.lua).
-- To tell "lost" from "still waiting in the queue", each push gets a number from DISPATCHED;
-- the claim records the highest number claimed: the list is first in, first out, so a job
-- whose number is below that was taken off the list already.
-- *job* ({kind, invoice_number, enqueued_at, dispatches}) and *body*: the job as its caller
-- has it already (just enqueued, or just read by the pump), waiting: its state is written
-- "ready" with its dispatch (neither state is counted). Without them it is read here, and it
-- is ready already (the sweep replacing a lost message).
local function push(ref, job_id, job, body)
  local jkey = job_key(ref, job_id)
  local member = ref .. " " .. job_id
  local state = job and {"state", "ready"} or {}
  if not job then
    job = redis.call("HMGET", jkey, "kind", "invoice_number", "enqueued_at", "dispatches")
    body = redis.call("GET", body_key(jkey))
  end
  local n = tonumber(job[4] or "0") + 1
  redis.call("LPUSH", QUEUE, build_message(job[1], job_id, job_id .. "." .. n, ref, job[2] or "",
    job[3], body))
  redis.call("HSET", jkey, "dispatches", n, "dseq", redis.call("INCR", DISPATCHED), unpack(state))
  redis.call("ZADD", READY, now_text(), member)
  redis.call("SADD", account_key(account_of(ref), "out"), member)
end

-- The order's head job is dead: the order is held (its later jobs wait) for an operator.
local function to_dead(ref, job_id, from, kind)
  local jkey = job_key(ref, job_id)
  set_state(jkey, ref, from, "dead")
  redis.call("HSET", order_key(ref, "order"), "state", "held")
  redis.call("HSET", DEAD_JOBS, job_id, ref)
  count(ref, "held", behind_head(ref))
  stat(ref, "finished:" .. kind .. ":dead")
  no_head(ref)
end

-- Fair share. An account's waiting jobs stay in its line in Redis; at most WINDOW of them have
-- a message in the queue at once, and another one gets its message as one of those is claimed.
-- So however long one account's backlog, another account's job has at most WINDOW messages of
-- each account ahead of it, and the accounts take turns. A rate-limited or paused account gets
-- a message only shortly (LEAD) before the claim would let it run: its messages do not churn
-- (fetched, found over the limit, parked, again and again), and no worker thread waits long on
-- it. An account that cannot send yet is in LINES, by when it can; the sweep pumps it then.
local LEAD = 0.1

-- The account's 429 pause (until when), rate, burst and token bucket, as pump needs them; a
-- caller that has read them already passes them instead.
local function limits_of(account)
  local v = redis.call("MGET", account_key(account, "pause"), account_key(account, "limits"),
    account_key(account, "rate"))
  local rate, burst = string.match(v[2] or "0 0", "^(%S+) (%S+)$")
  return tonumber(v[1] or "0"), tonumber(rate), tonumber(burst), tonumber(v[3] or "0")
end

-- Give messages to the account's waiting jobs while its window, pause and rate allow; if its
-- pause or rate is what stops it, it goes into LINES for the sweep to pump it then. (An
-- account left in LINES after its line moved on costs that sweep one empty pump.) *known*: a
-- job just enqueued and put in the line (its kind, number, enqueued_at, body; member, alone).
local function pump(account, pause, rate, burst, tat, known)
  local line, out = account_key(account, "line"), account_key(account, "out")
  local n_out = redis.call("SCARD", out)
  if n_out >= WINDOW then
    return  -- a claim of one of its messages pumps it again
  end
  if not pause then
    pause, rate, burst, tat = limits_of(account)
  end
  local t = now()
  tat = math.max(tat, t)
  while n_out < WINDOW do
    -- The slot the next message's claim would get once those out before it took theirs.
    local at = math.max(t, pause)
    if rate > 0 then
      at = math.max(at, tat + (n_out - burst) / rate - LEAD)
    end
    -- A known job alone in the line is its head, and once it is dispatched the line is empty.
    local alone = known and known.alone
    if at > t then
      if alone or redis.call("LINDEX", line, 0) then
        redis.call("ZADD", LINES, at, account)
      end
      return
    end
    local member = redis.call("LPOP", line)
    if not member then
      return
    end
    local ref, job_id = split(member)
    local jkey = job_key(ref, job_id)
    if known and member == known.member then
      push(ref, job_id, {known.kind, known.number, known.enqueued_at, false}, known.body)
      n_out = n_out + 1
      if alone then
        return
      end
    else
      local job = redis.call("HMGET", jkey, "kind", "invoice_number", "enqueued_at", "dispatches",
        "state")
      if job[5] == "waiting" then
        local body = redis.call("GET", body_key(jkey))
        if body then
          push(ref, job_id, job, body)
          n_out = n_out + 1
        else
          -- Checked before anything is written for it: a job without its body (data of an
          -- earlier layout) cannot be sent. It ends dead, saying why, rather than failing the
          -- script half-way through whatever called this pump.
          redis.call("RPUSH", attempts_key(jkey), cjson.encode({at = tostring(now()),
            outcome = "permanent", message = "not sent: the job has no body in Redis (data " ..
            "of an earlier layout?); enqueue it again, then discard this one"}))
          to_dead(ref, job_id, "waiting", job[1] or "unknown")
        end
      end
    end
  end
end

-- The job's turn has come (its order reached it, a retry or a rate-limit slot is due, its
-- lease ran out, an operator replays it): into its account's line, at the front if it was
-- due already, and dispatched when the account's window and rate allow.
local function to_line(ref, job_id, from, front, known)
  if not known then  -- a job just enqueued is written "waiting" already
    set_state(job_key(ref, job_id), ref, from, "waiting")
  end
  local account = account_of(ref)
  local length = redis.call(front and "LPUSH" or "RPUSH", account_key(account, "line"),
    ref .. " " .. job_id)
  if known then
    known.member, known.alone = ref .. " " .. job_id, length == 1
  end
  pump(account, nil, nil, nil, nil, known)
end

-- The order's head is finished (done or discarded): the next job's turn, or the order is idle.
-- *head*: its seq, if the caller knows it.
local function advance(ref, head)
  local okey = order_key(ref, "order")
  head = head or tonumber(redis.call("HGET", okey, "head"))
  local next_id = redis.call("HGET", order_key(ref, "seqs"), head + 1)
  if next_id then
    redis.call("HSET", okey, "head", head + 1, "state", "active")
    head_is(ref, next_id)
    to_line(ref, next_id, "queued", false)
  else
    redis.call("HSET", okey, "head", "0", "state", "idle")
    no_head(ref)
  end
end
