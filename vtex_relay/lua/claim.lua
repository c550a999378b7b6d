-- A worker received a job's message: take the job with a lease, before calling VTEX.
-- The lease is the "in flight" record: whoever finds it expired knows the call may have
-- happened, and reconciles with GET order before sending again.
-- KEYS: job, leases      ARGV: member, token, lease_seconds
-- Returns {"run", seq, tries, uncertain} | {"busy"} | {"stale", state}
local jkey, leases = KEYS[1], KEYS[2]
local member, token = ARGV[1], ARGV[2]
local t = now()
local lease_until = t + tonumber(ARGV[3])

local state = redis.call("HGET", jkey, "state")
if state == "running" then
  if tonumber(redis.call("HGET", jkey, "lease_until")) > t then
    return {"busy"}
  end
  redis.call("HSET", jkey, "uncertain", 1)  -- its holder died mid-call
elseif state ~= "ready" then
  return {"stale", state or "gone"}
end
local tries = redis.call("HINCRBY", jkey, "tries", 1)
redis.call("HSET", jkey, "state", "running", "lease_token", token, "lease_until", lease_until)
redis.call("ZADD", leases, lease_until, member)
return {"run", redis.call("HGET", jkey, "seq"), tries, redis.call("HGET", jkey, "uncertain")}
