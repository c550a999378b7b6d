-- Give their turn back to what is due: retries whose wait is over, throttled jobs whose
-- rate-limit slot (or the account's 429 pause) is near, jobs whose worker's lease ran out (the
-- worker died or hung mid-call; the next run reconciles before sending); pump the lines of
-- accounts whose rate or pause now lets them send (LINES); and push again the message of a job
-- whose message was lost: out for longer than lost_after seconds, and provably not still in
-- the queue — the queue is empty, or a message pushed after it has been claimed already.
-- It also records that it ran (SWEPT) and the sweeping worker's heartbeat (WORKERS), and keeps
-- PIN in leases and ready (keys.py says why).
-- KEYS: delayed, leases, queue, ready, claimed
-- ARGV[1]: JSON {limit, lost_after (seconds), window, worker (its name, or "")}
-- Returns {retries_due, throttled_released, leases_recovered, lost_messages_replaced,
--          seconds until an account's line is due (-1: none)}
local delayed, leases, ready, claimed = KEYS[1], KEYS[2], KEYS[4], KEYS[5]
local A = cjson.decode(ARGV[1])
QUEUE, WINDOW = KEYS[3], A.window
local limit, lost_after = A.limit, A.lost_after
local t = now()
redis.call("SET", SWEPT, t)
redis.call("ZADD", leases, "NX", "+inf", PIN)
redis.call("ZADD", ready, "NX", "+inf", PIN)
if A.worker ~= "" then
  redis.call("ZADD", WORKERS, t, A.worker)
  redis.call("ZREMRANGEBYSCORE", WORKERS, "-inf", t - 86400)  -- gone for a day: forgotten
end

local retried, released, recovered = 0, 0, 0
for _, member in ipairs(redis.call("ZRANGE", delayed, "-inf", t, "BYSCORE", "LIMIT", 0, limit)) do
  redis.call("ZREM", delayed, member)
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  local state = redis.call("HGET", jkey, "state")
  if state == "retrying" or state == "throttled" then
    redis.call("HDEL", jkey, "due_at")
    to_line(ref, job_id, state, true)
    if state == "retrying" then
      retried = retried + 1
    else
      released = released + 1
    end
  end
end
for _, member in ipairs(redis.call("ZRANGE", leases, "-inf", t, "BYSCORE", "LIMIT", 0, limit)) do
  redis.call("ZREM", leases, member)
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  local until_ = tonumber(redis.call("HGET", jkey, "lease_until") or "0")
  if redis.call("HGET", jkey, "state") == "running" and until_ <= t then
    redis.call("HSET", jkey, "uncertain", 1)
    redis.call("HDEL", jkey, "lease_token", "lease_until")
    to_line(ref, job_id, "running", true)
    recovered = recovered + 1
  end
end
for _, account in ipairs(redis.call("ZRANGE", LINES, "-inf", t, "BYSCORE", "LIMIT", 0, limit)) do
  redis.call("ZREM", LINES, account)  -- pump puts it back if it must still wait
  pump(account)
end
local replaced = 0
local queue_empty = redis.call("LLEN", QUEUE) == 0
local claimed_upto = tonumber(redis.call("GET", claimed) or "0")
for _, member in ipairs(redis.call("ZRANGE", ready, "-inf", t - lost_after, "BYSCORE", "LIMIT", 0, limit)) do
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  if redis.call("HGET", jkey, "state") ~= "ready" then
    redis.call("ZREM", ready, member)
  elseif queue_empty or tonumber(redis.call("HGET", jkey, "dseq") or "0") <= claimed_upto then
    push(ref, job_id)
    replaced = replaced + 1
  else
    -- Still queued, and so is every message pushed after it (READY is in push order): stop,
    -- or each sweep would read a long queue again, several times a second.
    break
  end
end
local next_line = redis.call("ZRANGE", LINES, 0, 0, "WITHSCORES")
local next_due = -1
if next_line[2] then
  next_due = math.max(tonumber(next_line[2]) - now(), 0)
end
return {retried, released, recovered, replaced, tostring(next_due)}
