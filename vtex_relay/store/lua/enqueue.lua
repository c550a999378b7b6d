-- Append jobs to their order; an order that is idle gets the first as its head, into its
-- account's line. Or, with check = true, decide what appending them would do and write
-- nothing: a batch's pre-check, so that every line is decided by these same rules before any
-- is enqueued.
-- KEYS: order, seqs, queue, dedup, invoices, tracked (of one order)
-- ARGV[1]: JSON {check, window (the most messages an account may have in the queue),
--   layout (its version), jobs = [{ref, id, kind, digest (an invoice's body digest),
--   number (the invoice number it posts or updates), enqueued_at, fingerprint,
--   after (the fingerprint of the job enqueued just before it in the same batch for the same
--   order, or ""), posts_invoice, needs_tracking_number, tracks (it gives its invoice a
--   tracking number), type ("Output" | "Input"), value (invoiceValue, in cents),
--   policy ("single": one Output invoice per order | "partial": any number)}]}
-- ARGV[1 + i]: job i's body (the VTEX body's compact JSON); none with check.
-- Returns one reply per job: {"enqueued", job_id} | {"duplicate", existing_id}
--       | {"conflict", existing_id, number, state} | {"skipped"}
--       | {"unknown-invoice", "NF-1 NF-2"} | {"untracked"}
-- The producers' hot path: a batch runs it once per line, so it reads the order once and
-- writes each hash once. Redis refuses to start it when out of memory (no allow-oom flag), so
-- it never stops half-way through its writes.
local A = cjson.decode(ARGV[1])
local CHECK = A.check
local okey, seqs, dedup, invoices, tracked = KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6]
QUEUE, WINDOW = KEYS[3], tonumber(A.window)

-- With check, what a job would write that a later job of the same call reads (fingerprints,
-- the ledger, the order's Output invoice, tracked numbers, its own state) goes to `shadow`,
-- read before Redis; without, these are the plain commands.
local shadow = {}
local function hget(key, field)
  local fields = shadow[key]
  if fields and fields[field] ~= nil then return fields[field] end
  return redis.call("HGET", key, field)
end
local function hset(key, ...)
  if not CHECK then return redis.call("HSET", key, ...) end
  local fields, pairs_ = shadow[key] or {}, {...}
  for i = 1, #pairs_, 2 do fields[pairs_[i]] = pairs_[i + 1] end
  shadow[key] = fields
end
local function hmget(key, ...)
  local values, fields = redis.call("HMGET", key, ...), shadow[key] or {}
  for i, field in ipairs({...}) do
    if fields[field] ~= nil then values[i] = fields[field] end
  end
  return values
end
local function sismember(key, member)
  return (shadow[key] and shadow[key][member]) or redis.call("SISMEMBER", key, member) == 1
end
local function exists(key)
  return shadow[key] ~= nil or redis.call("EXISTS", key) == 1
end
local function state_of(ref, job_id)
  return hget(job_key(ref, job_id), "state") or "done"
end

-- The key layout (vtex_relay/store/preflight.py): the first job of an empty Redis stamps it;
-- data of another layout, or of the layout before the stamp, is never written to as if it were
-- this one.
local layout = redis.call("GET", LAYOUT_KEY)
if layout ~= A.layout then
  if layout or redis.call("EXISTS", ACCOUNTS) == 1 then
    return redis.error_reply("LAYOUT Redis holds vtex-relay data of layout " ..
      (layout or "1 (no stamp)") .. ", not " .. A.layout .. ": run `vtex-relay migrate`")
  end
  if not CHECK then
    redis.call("SET", LAYOUT_KEY, A.layout)
    redis.call("ZADD", READY, "NX", "+inf", PIN)  -- keys.py: PIN (the sweep keeps it)
  end
end

local function decide(job)
  local ref, job_id, number, digest = job.ref, job.id, job.number, job.digest
  if exists(job_key(ref, job_id)) then
    -- The same job again (a producer retrying after a failed pipeline, whose scripts may have
    -- run): it is enqueued already; changing anything would strand its order.
    return {"enqueued", job_id}
  end
  -- A batch that failed part-way (Redis out of memory, say) must leave each order a prefix of
  -- its jobs: a job whose predecessor in the batch is not in its order is not enqueued either.
  if job.after ~= "" and not hget(dedup, job.after) then
    return {"skipped"}
  end
  -- The identical job (same kind, invoice number and body, or the same idempotency key) is
  -- enqueued once: sending it again, as a re-run batch does, answers with the first job's id.
  -- A discarded job does not count: the operator gave up on it, so it may be sent again.
  local same = hget(dedup, job.fingerprint)
  if same and state_of(ref, same) ~= "discarded" then
    return {"duplicate", same}
  end
  -- An update for an invoice the order does not have can only get a 404 from VTEX, and a
  -- tracking update before its invoice's tracking number is one VTEX says not to send. Both
  -- are known only when the relay has enqueued the order's invoices (else the invoice went to
  -- VTEX some other way, and the update is accepted).
  if not job.posts_invoice and exists(invoices) then
    if not hget(invoices, number) then
      local known = redis.call("HKEYS", invoices)
      for field in pairs(shadow[invoices] or {}) do
        if redis.call("HEXISTS", invoices, field) == 0 then table.insert(known, field) end
      end
      table.sort(known)
      return {"unknown-invoice", table.concat(known, " ")}
    end
    if job.needs_tracking_number and not sismember(tracked, number) then
      return {"untracked"}
    end
  end
  local order = hmget(okey, "head", "invoice_job", "invoice_digest", "invoice_number", "state")
  if job.posts_invoice then
    -- The ledger: each invoice number is POSTed for one invoice body, ever (VTEX changes
    -- nothing of a posted invoice; a re-POST only renews its receipt), unless its job was
    -- discarded.
    local held = hget(invoices, number)
    if held then
      local holder, held_digest = string.match(held, "^(%S+) (%S+)")
      local state = state_of(ref, holder)
      if state ~= "discarded" then
        if held_digest == digest then
          return {"duplicate", holder}
        end
        return {"conflict", holder, number, state}
      end
    end
    if job.type ~= "Input" and job.policy == "single" then
      -- Under "single", one Output invoice per order (the integration guide's rule).
      local existing = order[2]
      local state = existing and state_of(ref, existing)
      if existing and state ~= "discarded" then
        if order[3] == digest then
          return {"duplicate", existing}
        end
        return {"conflict", existing, order[4], state}
      end
    end
  end
  return nil, order
end

local function append(job, body, order)
  local ref, job_id, number = job.ref, job.id, job.number
  local jkey = job_key(ref, job_id)
  local head, changes = tonumber(order[1] or "0"), {}
  if job.posts_invoice then
    if job.type ~= "Input" then
      changes = {"invoice_job", job_id, "invoice_digest", job.digest, "invoice_number", number}
    end
    -- "job_id digest type value": the operator's view of the order's invoices reads it too.
    redis.call("HSET", invoices, number, table.concat({job_id, job.digest, job.type, job.value}, " "))
  end
  local seq = redis.call("HINCRBY", okey, "last_seq", "1")
  redis.call("HSET", seqs, seq, job_id)
  redis.call("HSET", dedup, job.fingerprint, job_id)
  if job.tracks then
    redis.call("SADD", tracked, number)
  end
  -- A waiting job keeps its body and envelope, not a message: that is built when it is
  -- dispatched. The body has a key of its own so that the job's hash, all short values, stays
  -- a listpack (Redis's compact encoding; one value over 64 bytes makes the whole hash a
  -- hashtable, which costs more than the body). Counters left out (tries, dispatches,
  -- uncertain) read as 0.
  redis.call("SET", body_key(jkey), body)
  redis.call("SADD", ACCOUNTS, account_of(ref))
  local t = now_text()
  -- Its first state, with its fields: queued behind its order's head, or waiting in its
  -- account's line (to_line, told the job is known, does not write it again).
  local first = {"state", "queued"}
  if head == 0 then
    first = {"state", "waiting"}
  end
  redis.call("HSET", jkey, "seq", seq, "kind", job.kind, "invoice_number", number,
    "enqueued_at", job.enqueued_at, "t", t, unpack(first))
  stat(ref, "enqueued:" .. job.kind)
  if head == 0 then
    head_is(ref, job_id, t)
    -- The order is idle: the job is its head.
    for _, v in ipairs({"head", seq, "state", "active"}) do table.insert(changes, v) end
  end
  if #changes > 0 then
    redis.call("HSET", okey, unpack(changes))
  end
  if head == 0 then
    local known = {kind = job.kind, number = number, enqueued_at = job.enqueued_at, body = body}
    to_line(ref, job_id, nil, false, known)
  else
    count(ref, "queued", "1")
    if order[5] == "held" then
      count(ref, "held", "1")
    end
  end
end

-- What a checked job would have written, as far as the jobs after it read it.
local function pretend(job)
  hset(job_key(job.ref, job.id), "state", "queued")
  hset(dedup, job.fingerprint, job.id)
  if job.posts_invoice then
    hset(invoices, job.number, job.id .. " " .. job.digest)
    if job.type ~= "Input" then
      hset(okey, "invoice_job", job.id, "invoice_digest", job.digest, "invoice_number", job.number)
    end
  end
  if job.tracks then
    hset(tracked, job.number, true)
  end
end

local replies = {}
for i, job in ipairs(A.jobs) do
  local reply, order = decide(job)
  if not reply then
    if CHECK then pretend(job) else append(job, ARGV[1 + i], order) end
    reply = {"enqueued", job.id}
  end
  replies[i] = reply
end
return replies
