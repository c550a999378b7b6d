-- Record an attempt's outcome and move the job (and its order) on.
-- KEYS: job, attempts, leases, delayed, dead, queue, pause, seen
-- ARGV (positional, as claim.lua's): ref, job_id, member, token, outcome ("done"|"retry"|
--       "dead"), delay (seconds, for "retry"), uncertain ("1" or ""), retention (seconds),
--       pause (a 429's Retry-After: every job of the account waits that long; 0: none),
--       window (the most messages an account may have in the queue),
--       kind, result (the try's: "2xx", "429", "4xx", "5xx", "timeout", "connection"; "" for
--       none), reconciled ("found" | "not-found" | ""), durations ("OPERATION BUCKET SECONDS"
--       for each request the try made, ";"-separated; BUCKET is the histogram's upper bound),
--       the attempt (JSON), the order as the try's GET read it (JSON, or ""; kept for
--       `vtex-relay order`)
-- Returns "ok" | "lost" (the lease was taken over: this worker's outcome no longer counts)
local jkey, attempts, leases, delayed, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ref, job_id, member, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local delay, uncertain, retention = tonumber(ARGV[6]), ARGV[7] == "1", ARGV[8]
local pause_key, pause = KEYS[7], tonumber(ARGV[9])
QUEUE, WINDOW = KEYS[6], tonumber(ARGV[10])
local kind, result, reconciled, durations = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local attempt, seen = ARGV[15], ARGV[16]

-- The try happened, whoever holds the lease now: counted.
if result ~= "" then
  stat(ref, "tries:" .. kind .. ":" .. result)
end
if reconciled ~= "" then
  stat(ref, "reconciliations:" .. kind .. ":" .. reconciled)
end
for entry in string.gmatch(durations, "[^;]+") do
  local operation, bucket, seconds = string.match(entry, "^(%S+) (%S+) (%S+)$")
  redis.call("HINCRBY", DURATIONS, operation .. " " .. bucket, "1")
  redis.call("HINCRBYFLOAT", DURATIONS, operation .. " sum", seconds)
end

redis.call("RPUSH", attempts, attempt)
if seen ~= "" then
  -- What VTEX showed, whoever holds the lease. A key of its own: over 64 bytes in the order's
  -- hash, it would take the hash out of Redis's compact encoding.
  redis.call("SET", KEYS[8], seen)
end
if pause > 0 then
  local until_ = now() + pause
  if until_ > tonumber(redis.call("GET", pause_key) or "0") then
    redis.call("SET", pause_key, until_, "PX", math.ceil(pause * 1000))
  end
end
local job = redis.call("HMGET", jkey, "lease_token", "seq", "state")
if job[3] ~= "running" or job[1] ~= token then
  return "lost"
end
redis.call("ZREM", leases, member)
redis.call("HDEL", jkey, "lease_token", "lease_until")
if uncertain then
  redis.call("HSET", jkey, "uncertain", "1")
end

if outcome == "retry" then
  local due_at = now() + delay
  set_state(jkey, ref, "running", "retrying")
  redis.call("HSET", jkey, "due_at", due_at)
  redis.call("ZADD", delayed, due_at, member)
elseif outcome == "dead" then
  to_dead(ref, job_id, "running", kind)
else
  -- Keep the record (state, attempts), not the body: it is most of a job's memory.
  set_state(jkey, ref, "running", "done")
  redis.call("DEL", body_key(jkey))
  redis.call("EXPIRE", jkey, retention)
  redis.call("EXPIRE", attempts, retention)
  stat(ref, "finished:" .. kind .. ":delivered")
  advance(ref, tonumber(job[2]))  -- the job was its order's head
end
return "ok"
