-- Append a job to its order; if the order is idle, the job is its head: into its account's line.
-- KEYS: order, seqs, job, queue, dedup, invoices, tracked
-- ARGV: ref, job_id, kind, body (the VTEX body's compact JSON), digest, invoice_number, enqueued_at, fingerprint,
--       after (the fingerprint of the job enqueued just before it in the same batch for the
--       same order, or ""), invoice_type ("Output" | "Input"; "" for updates),
--       policy ("single": one Output invoice per order | "partial": any number),
--       tracks ("1": the job gives its invoice a tracking number: a tracking-number job, or an
--       invoice whose body has one), invoice_value (an invoice's invoiceValue, in cents),
--       window (the most messages an account may have in the queue), layout (its version)
-- Returns {"enqueued", job_id} | {"duplicate", existing_id}
--       | {"conflict", existing_id, number, state} | {"skipped"}
--       | {"unknown-invoice", "NF-1 NF-2"} | {"untracked"}
-- The producers' hot path: a batch runs it once per line, so it reads the order once and
-- writes each hash once. Redis refuses to start it when out of memory (no allow-oom flag), so
-- it never stops half-way through its writes.
local okey, seqs, jkey, dedup = KEYS[1], KEYS[2], KEYS[3], KEYS[5]
local invoices, tracked = KEYS[6], KEYS[7]
QUEUE, WINDOW = KEYS[4], tonumber(ARGV[14])
local ref, job_id, kind, body, digest, number, enqueued_at, fingerprint, after =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local invoice_type, policy, tracks, invoice_value = ARGV[10], ARGV[11], ARGV[12], ARGV[13]

-- The key layout (vtex_relay/store/preflight.py): the first job of an empty Redis stamps it; data of
-- another layout, or of the layout before the stamp, is never written to as if it were this one.
local layout = redis.call("GET", LAYOUT_KEY)
if layout ~= ARGV[15] then
  if layout or redis.call("EXISTS", ACCOUNTS) == 1 then
    return redis.error_reply("LAYOUT Redis holds vtex-relay data of layout " ..
      (layout or "1 (no stamp)") .. ", not " .. ARGV[15] .. ": run `vtex-relay migrate`")
  end
  redis.call("SET", LAYOUT_KEY, ARGV[15])
end

if redis.call("EXISTS", jkey) == 1 then
  -- The same job again (a producer retrying after a failed pipeline, whose scripts may have
  -- run): it is enqueued already; changing anything would strand its order.
  return {"enqueued", job_id}
end

-- A batch that failed part-way (Redis out of memory, say) must leave each order a prefix of
-- its jobs: a job whose predecessor in the batch is not in its order is not enqueued either.
if after ~= "" and redis.call("HEXISTS", dedup, after) == 0 then
  return {"skipped"}
end

-- The identical job (same kind, invoice number and body, or the same idempotency key) is
-- enqueued once: sending it again, as a re-run batch does, answers with the first job's id.
-- A discarded job does not count: the operator gave up on it, so it may be sent again.
local same = redis.call("HGET", dedup, fingerprint)
if same and (redis.call("HGET", job_key(ref, same), "state") or "done") ~= "discarded" then
  return {"duplicate", same}
end

-- An update for an invoice the order does not have can only get a 404 from VTEX, and a
-- tracking update before its invoice's tracking number is one VTEX says not to send. Both are
-- known only when the relay has enqueued the order's invoices (else the invoice went to VTEX
-- some other way, and the update is accepted).
if kind ~= "invoice" and redis.call("EXISTS", invoices) == 1 then
  if redis.call("HEXISTS", invoices, number) == 0 then
    return {"unknown-invoice", table.concat(redis.call("HKEYS", invoices), " ")}
  end
  if kind == "tracking" and redis.call("SISMEMBER", tracked, number) == 0 then
    return {"untracked"}
  end
end

local order = redis.call("HMGET", okey, "head", "invoice_job", "invoice_digest", "invoice_number",
  "state")
local head, existing = tonumber(order[1] or "0"), order[2]
local changes = {}
if kind == "invoice" then
  -- The ledger: each invoice number is POSTed for one invoice body, ever (VTEX changes nothing
  -- of a posted invoice; a re-POST only renews its receipt), unless its job was discarded.
  local held = redis.call("HGET", invoices, number)
  if held then
    local holder, held_digest = string.match(held, "^(%S+) (%S+)")
    local state = redis.call("HGET", job_key(ref, holder), "state") or "done"
    if state ~= "discarded" then
      if held_digest == digest then
        return {"duplicate", holder}
      end
      return {"conflict", holder, number, state}
    end
  end
  if invoice_type ~= "Input" then
    -- Under "single", one Output invoice per order (the integration guide's rule).
    if existing and policy == "single" then
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
  -- "job_id digest type value": the operator's view of the order's invoices reads it too.
  local entry = table.concat({job_id, digest, invoice_type, invoice_value}, " ")
  redis.call("HSET", invoices, number, entry)
end

local seq = redis.call("HINCRBY", okey, "last_seq", 1)
redis.call("HSET", seqs, seq, job_id)
redis.call("HSET", dedup, fingerprint, job_id)
if tracks == "1" then
  redis.call("SADD", tracked, number)
end
-- A waiting job keeps its body and envelope, not a message: that is built when it is dispatched.
-- The body has a key of its own so that the job's hash, all short values, stays a listpack
-- (Redis's compact encoding; one value over 64 bytes makes the whole hash a hashtable, which
-- costs more than the body). Counters left out (tries, dispatches, uncertain) read as 0.
redis.call("SET", jkey .. ":body", body)
redis.call("SADD", ACCOUNTS, account_of(ref))
local t = now()
redis.call("HSET", jkey, "seq", seq, "kind", kind, "invoice_number", number,
  "enqueued_at", enqueued_at, "t", t)
stat(ref, "enqueued:" .. kind)
if head == 0 then
  head_is(ref, job_id, t)
  -- The order is idle: the job is its head.
  table.insert(changes, "head")
  table.insert(changes, seq)
  table.insert(changes, "state")
  table.insert(changes, "active")
end
if #changes > 0 then
  redis.call("HSET", okey, unpack(changes))
end
if head == 0 then
  to_line(ref, job_id, nil, false)
else
  set_state(jkey, ref, nil, "queued")
  if order[5] == "held" then
    count(ref, "held", 1)
  end
end
return {"enqueued", job_id}
