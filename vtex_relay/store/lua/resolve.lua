-- An operator acts on a dead job: "replay" runs it again at its place in the order (a fresh
-- round of attempts); "discard" drops it (the record stays) and releases the order's next job.
-- KEYS: job, dead, discarded, queue      ARGV[1]: JSON {ref, job_id, action, window}
-- Returns "ok" | {"not-dead", state}
local jkey, dead, discarded = KEYS[1], KEYS[2], KEYS[3]
local A = cjson.decode(ARGV[1])
QUEUE, WINDOW = KEYS[4], A.window
local ref, job_id, action = A.ref, A.job_id, A.action

-- Everything read is checked before the first write: a job of an earlier layout, or one that
-- is not its order's head, is refused whole.
local state = redis.call("HGET", jkey, "state")
if state ~= "dead" then
  return {"not-dead", state or "gone"}
end
local head = redis.call("HGET", order_key(ref, "order"), "head")
if not head or redis.call("HGET", order_key(ref, "seqs"), head) ~= job_id then
  return {"not-dead", "dead, but not its order's head (data of an earlier layout?)"}
end
if action == "replay" and redis.call("EXISTS", body_key(jkey)) == 0 then
  return {"not-dead", "dead, without its body (data of an earlier layout?): discard it"}
end
redis.call("HDEL", dead, job_id)
count(ref, "held", -behind_head(ref))
if action == "replay" then
  redis.call("HSET", jkey, "tries", 0)
  redis.call("HSET", order_key(ref, "order"), "state", "active")
  head_is(ref, job_id)
  to_line(ref, job_id, "dead", false)
else
  stat(ref, "finished:" .. redis.call("HGET", jkey, "kind") .. ":discarded")
  set_state(jkey, ref, "dead", "discarded")
  redis.call("HSET", discarded, job_id, ref)
  advance(ref)
end
return "ok"
