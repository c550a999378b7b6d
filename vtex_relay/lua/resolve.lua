-- An operator acts on a dead job: "replay" runs it again at its place in the order (a fresh
-- round of attempts); "discard" drops it (the record stays) and releases the order's next job.
-- KEYS: job, dead, discarded, queue      ARGV: ref, job_id, action
-- Returns "ok" | {"not-dead", state}
local jkey, dead, discarded, queue = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, job_id, action = ARGV[1], ARGV[2], ARGV[3]

local state = redis.call("HGET", jkey, "state")
if state ~= "dead" then
  return {"not-dead", state or "gone"}
end
redis.call("HDEL", dead, job_id)
if action == "replay" then
  redis.call("HSET", jkey, "tries", 0)
  redis.call("HSET", order_key(ref, "order"), "state", "active")
  dispatch(queue, ref, job_id)
else
  redis.call("HSET", jkey, "state", "discarded")
  redis.call("HSET", discarded, job_id, ref)
  advance(queue, ref)
end
return "ok"
