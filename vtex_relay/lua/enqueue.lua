-- Append a job to its order; dispatch it at once if the order is idle.
-- KEYS: order, seqs, job, queue
-- ARGV: ref, job_id, kind, message, digest, invoice_number, enqueued_at
-- Returns {"enqueued", job_id} | {"duplicate", existing_id} | {"conflict", existing_id, number, state}
-- The producers' hot path: a batch runs it once per line, so it reads the order once and
-- writes each hash once.
local okey, seqs, jkey, queue = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, job_id, kind, message, digest, number, enqueued_at =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call("EXISTS", jkey) == 1 then
  -- The same job again (a producer retrying after a failed pipeline, whose scripts may have
  -- run): it is enqueued already; changing anything would strand its order.
  return {"enqueued", job_id}
end

local order = redis.call("HMGET", okey, "head", "invoice_job", "invoice_digest", "invoice_number")
local head, existing = tonumber(order[1] or "0"), order[2]
local changes = {}
if kind == "invoice" then
  if existing then
    local state = redis.call("HGET", job_key(ref, existing), "state") or "done"
    if state ~= "discarded" then
      if order[3] == digest then
        return {"duplicate", existing}
      end
      return {"conflict", existing, order[4], state}
    end
  end
  changes = {"invoice_job", job_id, "invoice_digest", digest, "invoice_number", number}
end

local seq = redis.call("HINCRBY", okey, "last_seq", 1)
redis.call("HSET", seqs, seq, job_id)
local state, dispatches, dseq = "queued", 0, 0
if head == 0 then
  -- The order is idle: the job is its head and ready at once (dispatch, written inline).
  state, dispatches = "ready", 1
  dseq = push(queue, ref, job_id, 1, message, false)
  table.insert(changes, "head")
  table.insert(changes, seq)
  table.insert(changes, "state")
  table.insert(changes, "active")
end
redis.call("HSET", jkey, "seq", seq, "kind", kind, "state", state, "message", message,
  "invoice_number", number, "enqueued_at", enqueued_at, "tries", 0, "dispatches", dispatches,
  "dseq", dseq, "uncertain", 0)
if #changes > 0 then
  redis.call("HSET", okey, unpack(changes))
end
return {"enqueued", job_id}
