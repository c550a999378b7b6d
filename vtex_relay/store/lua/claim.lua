-- A worker received a job's message: take the job with a lease, before calling VTEX.
-- The lease is the "in flight" record: whoever finds it expired knows the call may have
-- happened, and reconciles with GET order before sending again.
--
-- The call must also fit the account's rate limit, shared by every worker: a GCRA (token
-- bucket: RATE per second, bursts of BURST) kept in one key per account. It is written here
-- rather than taken from a library (`limits`, `pyrate-limiter`) because it must be one step
-- with the claim: a job that gets no token goes back to waiting in Redis, its place in the
-- order kept, without a try counted and without a worker's thread waiting, in the same round
-- trip. And the libraries offer windows, not a bucket with a burst, and no account pause.
-- A job that must wait books its slot, so that waiting jobs come back spread out at the rate
-- rather than all at once. A wait of up to MAX_HOLD seconds is held by the worker (its
-- thread sleeps until the slot); a longer one is parked in Redis until shortly before its
-- slot. Either way the call goes out at its slot, not whenever a sweep happens to run: that
-- is what keeps every second under rate + burst. A 429 pauses the whole account (finish.lua).
--
-- The claim also takes the message out of the account's window and pumps its line (common.lua),
-- and records the account's rate and burst for the pumps of scripts that are not given them.
--
-- KEYS: job, leases, delayed, rate, pause, ready, claimed, queue, invoices (the order's ledger)
-- ARGV: member, token, lease (seconds), rate (per second; 0 = no limit), burst, window,
--       calls (how many requests the try makes: 2 for an invoice whose order is read first; an
--       uncertain try reads the order first too, whatever its kind), ledger ("1": the try
--       checks the order's total, and needs what the relay has delivered of it; "": not).
--       Positional, not JSON: decoding JSON costs Redis more than a command does.
-- Returns {"run", seq, tries, uncertain, hold_seconds, [number, type, value]...} (with ledger:
--       the order's invoices the relay has delivered, but this job's: VTEX's GET may not show
--       them yet) | {"wait", seconds} (the job is now
--       "throttled", in the delayed set) | {"busy"} (its lease runs) | {"stale"} (it is in
--       no state to run: not ready, or gone); the last two answer a duplicate message
local jkey, leases, delayed, rate_key, pause_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ready, claimed = KEYS[6], KEYS[7]
local member, token, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
QUEUE, WINDOW = KEYS[8], tonumber(ARGV[6])
local calls, ledger = tonumber(ARGV[7]), ARGV[8] == "1"
local t = now()
local ref = split(member)
local account = account_of(ref)

-- Everything the claim reads, in two commands.
local job = redis.call("HMGET", jkey, "seq", "lease_until", "dseq", "slot_at", "uncertain", "state",
  "tries")
local limits_key = account_key(account, "limits")
local shared = redis.call("MGET", claimed, pause_key, limits_key, rate_key)
local state = job[6]
local expired = false
if state == "running" then
  if tonumber(job[2]) > t then
    return {"busy"}
  end
  expired = true  -- its holder died mid-call
elseif state ~= "ready" then
  return {"stale"}
end
local uncertain = expired or job[5] == "1"

-- The message arrived: it is no longer at risk of being lost (common.lua, push), and no longer
-- takes a place in the account's window.
if not expired then
  redis.call("ZREM", ready, member)
  redis.call("SREM", account_key(account, "out"), member)
  if tonumber(job[3] or "0") > tonumber(shared[1] or "0") then
    redis.call("SET", claimed, job[3])
  end
end
local limits = ARGV[4] .. " " .. ARGV[5]
local pause_until = tonumber(shared[2] or "0")

local MAX_HOLD = 1.0
local start = math.max(t, pause_until)
local slot = tonumber(job[4] or "")
if slot and slot < t - 0.1 then
  slot = nil  -- its slot went by (a stall): sending now would burst, so take a new one
end
-- The account's limits, for the pumps of scripts that are not given them (written on change).
if shared[3] ~= limits then
  redis.call("SET", limits_key, limits)
end
local next_tat = 0
if rate > 0 then
  next_tat = tonumber(shared[4] or "0")
end
if not slot and rate > 0 then
  -- A try takes one slot per request it makes: VTEX counts the GET too.
  if uncertain then
    calls = 2
  end
  local interval = 1 / rate
  local tat = math.max(next_tat, t)
  next_tat = tat + calls * interval
  redis.call("SET", rate_key, next_tat, "PX", math.ceil((next_tat - t) * 1000) + 1000)
  slot = tat - burst * interval
end
if slot and slot > start then
  start = slot
end
if start - t > MAX_HOLD then
  if expired then
    redis.call("HSET", jkey, "uncertain", 1)
    redis.call("HDEL", jkey, "lease_token", "lease_until")
  end
  if slot then
    redis.call("HSET", jkey, "slot_at", slot)  -- booked: not taken again when it comes back
  end
  local due = start - MAX_HOLD / 2
  set_state(jkey, ref, state, "throttled")
  redis.call("HSET", jkey, "due_at", due)
  redis.call("ZADD", delayed, due, member)
  pump(account, pause_until, rate, burst, next_tat)
  return {"wait", tostring(start - t)}
end

if job[4] then
  redis.call("HDEL", jkey, "slot_at")
end
local hold = math.max(start - t, 0)
local lease_until = string.format("%.17g", t + hold + lease)  -- text once, written twice
local tries = tonumber(job[7] or "0") + 1
-- set_state's write, with the try's count and the lease: ready is not counted, running is; an
-- expired lease's job was running already.
local fields = {"state", "running", "tries", tries, "lease_token", token,
  "lease_until", lease_until}
if expired then
  table.insert(fields, "uncertain")
  table.insert(fields, 1)
end
redis.call("HSET", jkey, unpack(fields))
if state ~= "running" then
  count(ref, "running", "1")
end
redis.call("ZADD", leases, lease_until, member)
if not expired then
  pump(account, pause_until, rate, burst, next_tat)
end
local reply = {"run", job[1], tries, uncertain and "1" or "0", hold > 0 and tostring(hold) or "0"}
if ledger then
  -- Each entry: "job_id digest type value". A job done, or gone (its record expired after
  -- delivery), has delivered its invoice; one waiting, dead or discarded has not.
  local _, own_id = split(member)
  local entries = redis.call("HGETALL", KEYS[9])
  for i = 1, #entries, 2 do
    local holder, flow, value = string.match(entries[i + 1], "^(%S*) %S* (%S*) (%d+)$")
    if holder and holder ~= own_id and (flow == "Output" or flow == "Input") then
      local held = redis.call("HGET", job_key(ref, holder), "state")
      if not held or held == "done" then
        table.insert(reply, entries[i])
        table.insert(reply, flow)
        table.insert(reply, value)
      end
    end
  end
end
return reply
