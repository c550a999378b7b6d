-- Shared by every vtex-relay script (prepended by vtex_relay/ordering.py, after the key layout
-- of vtex_relay/keys.py: READY, DISPATCHED, order_key(ref, name), job_key(ref, job_id)).
-- Keys of one order share the hash tag {account:orderId}, its "ref".
-- Invariant: an order has at most one job that is ready, running, retrying, throttled or dead:
-- its head.

local TAG_PLACEHOLDER = "__VTEX_RELAY_DELIVERY_TAG__"

-- Every time comes from Redis's clock, so workers on machines with skewed clocks agree.
local function now()
  local t = redis.call("TIME")
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- Make a job ready: push its Celery message onto the queue, with a fresh delivery tag so
-- that kombu never confuses two deliveries of one job. Workers pop from the right: a job
-- whose time has come (a retry, a rate-limit slot, a recovery) goes there, ahead of the
-- backlog, since waiting behind it would make it late.
--
-- A message can still be lost after the push: kombu takes it off the list (BRPOP) and keeps
-- no copy in Redis (ack emulation is off, worker/app.py), so a worker killed before the claim
-- loses it. Every ready job is therefore listed in READY with the time it became ready,
-- until claimed, and the sweep dispatches again a job that stayed ready too long (sweep.lua).
-- To tell "lost" from "still waiting behind a long backlog", a job pushed at the back gets a
-- number from DISPATCHED; the claim records the highest number claimed: the list is first
-- in, first out, so a job whose number is below that was taken off the list already.
local function push(queue, ref, job_id, n, message, due_now)
  -- A plain find: a pattern gsub over the ~1.5 KB message costs three times as much.
  local first, last = string.find(message, TAG_PLACEHOLDER, 1, true)
  message = string.sub(message, 1, first - 1) .. job_id .. "." .. n .. string.sub(message, last + 1)
  local dseq = 0
  if due_now then
    redis.call("RPUSH", queue, message)
  else
    redis.call("LPUSH", queue, message)
    dseq = redis.call("INCR", DISPATCHED)
  end
  redis.call("ZADD", READY, now(), ref .. " " .. job_id)
  return dseq
end

local function dispatch(queue, ref, job_id, due_now)
  local jkey = job_key(ref, job_id)
  local n = redis.call("HINCRBY", jkey, "dispatches", 1)
  local dseq = push(queue, ref, job_id, n, redis.call("HGET", jkey, "message"), due_now)
  redis.call("HSET", jkey, "dseq", dseq, "state", "ready")
end

-- The order's head is finished (done or discarded): dispatch the next job, or go idle.
local function advance(queue, ref)
  local okey = order_key(ref, "order")
  local head = tonumber(redis.call("HGET", okey, "head"))
  local next_id = redis.call("HGET", order_key(ref, "seqs"), head + 1)
  if next_id then
    redis.call("HSET", okey, "head", head + 1, "state", "active")
    dispatch(queue, ref, next_id)
  else
    redis.call("HSET", okey, "head", 0, "state", "idle")
  end
end
