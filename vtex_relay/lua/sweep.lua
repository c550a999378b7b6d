-- Re-dispatch what is due: retries whose wait is over, throttled jobs whose rate-limit slot (or
-- the account's 429 pause) is near, jobs whose worker's lease ran out
-- (the worker died or hung mid-call; the next run reconciles before sending), and ready jobs
-- whose message was lost (see dispatch in common.lua): ready for longer than lost_after
-- seconds, and provably not still in the queue — the queue is empty, or a job pushed after it
-- has been claimed already, or it was pushed at the front.
-- KEYS: delayed, leases, queue, ready, claimed      ARGV: limit, lost_after
-- Returns {retries_dispatched, throttled_released, leases_recovered, lost_messages_replaced}
local delayed, leases, queue, ready, claimed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local limit, lost_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = now()

local function split(member)
  local ref, job_id = string.match(member, "^(.-) (.+)$")
  return ref, job_id
end

local retried, released, recovered = 0, 0, 0
for _, member in ipairs(redis.call("ZRANGE", delayed, "-inf", t, "BYSCORE", "LIMIT", 0, limit)) do
  redis.call("ZREM", delayed, member)
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  local state = redis.call("HGET", jkey, "state")
  if state == "retrying" or state == "throttled" then
    redis.call("HDEL", jkey, "due_at")
    dispatch(queue, ref, job_id, true)
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
    dispatch(queue, ref, job_id, true)
    recovered = recovered + 1
  end
end
local replaced = 0
local queue_empty = redis.call("LLEN", queue) == 0
local claimed_upto = tonumber(redis.call("GET", claimed) or "0")
for _, member in ipairs(redis.call("ZRANGE", ready, "-inf", t - lost_after, "BYSCORE", "LIMIT", 0, limit)) do
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  if redis.call("HGET", jkey, "state") ~= "ready" then
    redis.call("ZREM", ready, member)
  else
    local dseq = tonumber(redis.call("HGET", jkey, "dseq") or "0")
    if queue_empty or dseq == 0 or dseq <= claimed_upto then
      dispatch(queue, ref, job_id, true)
      replaced = replaced + 1
    else
      -- Still queued, and so is every job pushed at the back after it (vr:ready is in push
      -- order): stop, or each sweep would read a long backlog again, several times a second.
      -- A job pushed at the front after this one is looked at once this one is claimed.
      break
    end
  end
end
return {retried, released, recovered, replaced}
