-- Append a job to its order; dispatch it at once if the order is idle.
-- KEYS: order, seqs, job, queue
-- ARGV: ref, job_id, kind, message, digest, invoice_number, enqueued_at
-- Returns {"enqueued", job_id} | {"duplicate", existing_id} | {"conflict", existing_id, number, state}
local okey, seqs, jkey, queue = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, job_id, kind, message, digest, number, enqueued_at =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call("EXISTS", jkey) == 1 then
  -- The same job again (a producer retrying after a failed pipeline, whose scripts may have
  -- run): it is enqueued already; changing anything would strand its order.
  return {"enqueued", job_id}
end

if kind == "invoice" then
  local existing = redis.call("HGET", okey, "invoice_job")
  if existing then
    local state = redis.call("HGET", job_key(ref, existing), "state") or "done"
    if state ~= "discarded" then
      if redis.call("HGET", okey, "invoice_digest") == digest then
        return {"duplicate", existing}
      end
      return {"conflict", existing, redis.call("HGET", okey, "invoice_number"), state}
    end
  end
  redis.call("HSET", okey, "invoice_job", job_id, "invoice_digest", digest, "invoice_number", number)
end

local seq = redis.call("HINCRBY", okey, "last_seq", 1)
redis.call("HSET", seqs, seq, job_id)
redis.call("HSET", jkey, "seq", seq, "kind", kind, "state", "queued", "message", message,
  "invoice_number", number, "enqueued_at", enqueued_at, "tries", 0, "dispatches", 0,
  "uncertain", 0)
local head = tonumber(redis.call("HGET", okey, "head") or "0")
if head == 0 then
  redis.call("HSET", okey, "head", seq, "state", "active")
  dispatch(queue, jkey, job_id)
end
return {"enqueued", job_id}
