-- Re-dispatch what is due: retries whose wait is over, and jobs whose worker's lease ran
-- out (the worker died or hung mid-call; the next run reconciles before sending).
-- KEYS: delayed, leases, queue      ARGV: limit
-- Returns {retries_dispatched, leases_recovered}
local delayed, leases, queue = KEYS[1], KEYS[2], KEYS[3]
local limit = tonumber(ARGV[1])
local t = now()

local function split(member)
  local ref, job_id = string.match(member, "^(.-) (.+)$")
  return ref, job_id
end

local retried, recovered = 0, 0
for _, member in ipairs(redis.call("ZRANGE", delayed, "-inf", t, "BYSCORE", "LIMIT", 0, limit)) do
  redis.call("ZREM", delayed, member)
  local ref, job_id = split(member)
  local jkey = job_key(ref, job_id)
  if redis.call("HGET", jkey, "state") == "retrying" then
    redis.call("HDEL", jkey, "due_at")
    dispatch(queue, jkey, job_id, true)
    retried = retried + 1
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
    dispatch(queue, jkey, job_id, true)
    recovered = recovered + 1
  end
end
return {retried, recovered}
