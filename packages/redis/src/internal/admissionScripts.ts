/**
 * The Lua scripts of the Redis admission store: one per operation (reserve, settle, correct, usage), each
 * atomic. They run the algorithm of the in-memory store (`AdmissionStore.makeMemory` of the core package):
 * a bucketed sliding log per key and per limit group, a debit and a cap per budget from provider feedback.
 *
 * State of one log (one Redis string, JSON): `n` the last bucket id, `b` the buckets
 * `[id, startMs, lastMs, requests, tokens, inputTokens, outputTokens]` oldest first, `d` / `du` the debit per
 * budget and until when, `cap` the provider's limit per budget. Every write sets a TTL of two windows past
 * the write, or one window past the latest debit, so an idle key disappears.
 *
 * Time is Redis' own (`TIME`) unless the caller passes `nowMs` (caller-clock mode). Every answer carries the
 * `now` it used, so the caller converts times back into its own clock. Infinity crosses as `1e300` (and `-Infinity`,
 * a drained budget's `free` or `slack`, comes back as about `-1e300`: the caller maps both).
 *
 * @internal
 */
import { Redis } from "effect/persistence"

const prelude = `
local INF = 1e300
local function nowOf(arg)
  if arg ~= "" then return tonumber(arg) end
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function load(k)
  local s = redis.call("GET", k)
  if s then
    local st = cjson.decode(s)
    if type(st.b) ~= "table" then st.b = {} end
    return st
  end
  return { n = 0, b = {}, d = {0, 0, 0, 0}, du = {0, 0, 0, 0}, cap = {INF, INF, INF, INF} }
end
local function save(k, st, W, now)
  local ttl = 2 * W
  for d = 1, 4 do
    if st.du[d] - now + W > ttl then ttl = st.du[d] - now + W end
  end
  redis.call("SET", k, cjson.encode(st), "PX", math.ceil(ttl))
end
local function expire(st, W, now)
  local b = st.b
  local k = 0
  while k < #b and b[k + 1][3] + W <= now do k = k + 1 end
  if k == 0 then return false end
  local nb = {}
  for i = k + 1, #b do nb[#nb + 1] = b[i] end
  st.b = nb
  return true
end
local function used(st)
  local u = {0, 0, 0, 0}
  for _, x in ipairs(st.b) do
    for d = 1, 4 do u[d] = u[d] + x[3 + d] end
  end
  return u
end
local function limit(st, L, d) return math.min(L[d], st.cap[d]) end
local function debitAt(st, d, t)
  if st.du[d] > t then return st.d[d] end
  return 0
end
-- whether x more in d exceeds the budget at t (a drain blocks even an unlimited one)
local function over(st, u, L, d, x, t)
  local debit = debitAt(st, d, t)
  return debit >= INF or u[d] + debit + x > limit(st, L, d)
end
-- what room leaves once debit is taken: nothing at all under a drain, even in an unlimited budget
local function left(room, debit)
  if debit >= INF then return -INF end
  return room - debit
end
local function earliest(st, u, d, x, W, now)
  if x < 0 then return INF end
  if u[d] <= x then return now end
  local freed = 0
  for _, b in ipairs(st.b) do
    freed = freed + b[3 + d]
    if u[d] - freed <= x then return b[3] + W end
  end
  return INF
end
local function four(at) return {tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])} end
-- corrections from ARGV[at]: count, then (dimension, limit, remaining, resetAfterMs, drain) each
local function correct(st, L, at, now, usedThen, W)
  local count = tonumber(ARGV[at])
  for j = 0, count - 1 do
    local p = at + 1 + j * 5
    local d = tonumber(ARGV[p])
    if ARGV[p + 1] ~= "" and tonumber(ARGV[p + 1]) > 0 then st.cap[d] = tonumber(ARGV[p + 1]) end
    local resetAt = now + W
    if ARGV[p + 3] ~= "" then resetAt = now + tonumber(ARGV[p + 3]) end
    if ARGV[p + 4] == "1" then
      st.d[d] = INF
      st.du[d] = math.max(st.du[d], resetAt)
    elseif ARGV[p + 2] ~= "" then
      local available = limit(st, L, d) - usedThen[d]
      local remaining = tonumber(ARGV[p + 2])
      if remaining < available then
        st.d[d] = available - remaining
        st.du[d] = resetAt
      else
        st.d[d] = 0
        st.du[d] = 0
      end
    end
  end
end
`

/**
 * KEYS: the key's log, then its groups'. ARGV: now, windowMs, cost (4), within flag, within (4), limits (4)
 * per log. Answers `[1, now, ids, usedAfter]`, `[2, now, availableAt, slack, free]`, or `[0, now]` (a backfill
 * attempt that does not fit).
 */
export const reserve = Redis.script(
  (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `${prelude}
local now = nowOf(ARGV[1])
local W = tonumber(ARGV[2])
local c = four(3)
local hasWithin = ARGV[7] == "1"
local within = four(8)
local n = #KEYS
local st, L, U, changed = {}, {}, {}, {}
local fits = true
for i = 1, n do
  st[i] = load(KEYS[i])
  changed[i] = expire(st[i], W, now)
  U[i] = used(st[i])
  L[i] = four(12 + 4 * (i - 1))
  if fits then
    for d = 1, 4 do
      if c[d] > 0 and over(st[i], U[i], L[i], d, c[d], now) then
        fits = false
        break
      end
    end
  end
end
local function saveChanged()
  for i = 1, n do
    if changed[i] then save(KEYS[i], st[i], W, now) end
  end
end
if hasWithin then
  local over = not fits
  for d = 1, 4 do
    if c[d] > within[d] then over = true end
  end
  if over then
    saveChanged()
    return cjson.encode({0, now})
  end
end
if fits then
  local ids = {}
  for i = 1, n do
    local s = st[i]
    local b = s.b[#s.b]
    if b == nil or now >= b[2] + W / 60 or now < b[3] then
      s.n = s.n + 1
      b = {s.n, now, now, 0, 0, 0, 0}
      s.b[#s.b + 1] = b
    end
    b[3] = now
    for d = 1, 4 do
      b[3 + d] = b[3 + d] + c[d]
      U[i][d] = U[i][d] + c[d]
    end
    ids[i] = b[1]
    save(KEYS[i], s, W, now)
  end
  return cjson.encode({1, now, ids, U[1]})
end
saveChanged()
local at = now
for i = 1, n do
  local s = st[i]
  for d = 1, 4 do
    local lim = limit(s, L[i], d)
    if c[d] ~= 0 and over(s, U[i], L[i], d, c[d], now) then
      local td
      if debitAt(s, d, now) > 0 then
        local withDebit = earliest(s, U[i], d, lim - c[d] - s.d[d], W, now)
        local afterDebit = math.max(earliest(s, U[i], d, lim - c[d], W, now), s.du[d])
        -- under a drain nothing fits before its reset (INF - INF is not NaN here: say so)
        if withDebit < s.du[d] and s.d[d] < INF then td = math.min(withDebit, afterDebit) else td = afterDebit end
      else
        td = earliest(s, U[i], d, lim - c[d], W, now)
      end
      if td > at then at = td end
    end
  end
end
if at >= INF then at = now + W end
if at <= now then at = now + 1 end
local slack = {INF, INF, INF, INF}
local free = {INF, INF, INF, INF}
for i = 1, n do
  local s = st[i]
  local freed = {0, 0, 0, 0}
  for _, b in ipairs(s.b) do
    if b[3] + W > at then break end
    for d = 1, 4 do freed[d] = freed[d] + b[3 + d] end
  end
  for d = 1, 4 do
    local lim = limit(s, L[i], d)
    slack[d] = math.min(slack[d], left(lim - c[d] - (U[i][d] - freed[d]), debitAt(s, d, at)))
    free[d] = math.min(free[d], left(lim - U[i][d], debitAt(s, d, now)))
  end
end
return cjson.encode({2, now, at, slack, free})
`
  }
).withReturnType<string>()

/**
 * KEYS: the key's log, then its groups'. ARGV: now, windowMs, actual flag, delta (4), bucket id per log, the
 * key's limits (4), usage after the reservation (4), corrections. Answers `now`.
 */
export const settle = Redis.script(
  (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `${prelude}
local now = nowOf(ARGV[1])
local W = tonumber(ARGV[2])
local n = #KEYS
if ARGV[3] == "1" then
  local delta = four(4)
  for i = 1, n do
    local raw = redis.call("GET", KEYS[i])
    if raw then
      local s = cjson.decode(raw)
      local id = tonumber(ARGV[7 + i])
      if type(s.b) == "table" then
        for _, b in ipairs(s.b) do
          if b[1] == id then
            for d = 1, 4 do b[3 + d] = b[3 + d] + delta[d] end
            save(KEYS[i], s, W, now)
            break
          end
        end
      end
    end
  end
end
local at = 8 + n
if tonumber(ARGV[at + 8]) > 0 then
  local s = load(KEYS[1])
  expire(s, W, now)
  correct(s, four(at), at + 8, now, four(at + 4), W)
  save(KEYS[1], s, W, now)
end
return now
`
  }
).withReturnType<number>()

/** KEYS: the key's log. ARGV: now, windowMs, limits (4), corrections. */
export const correct = Redis.script((key: string, args: ReadonlyArray<string | number>) => [key, ...args], {
  numberOfKeys: 1,
  lua: `${prelude}
local now = nowOf(ARGV[1])
local W = tonumber(ARGV[2])
local s = load(KEYS[1])
expire(s, W, now)
correct(s, four(3), 7, now, used(s), W)
save(KEYS[1], s, W, now)
return now
`
}).withReturnType<number>()

/** KEYS: the key's log. ARGV: now, windowMs. Answers the usage (4). */
export const usage = Redis.script((key: string, args: ReadonlyArray<string | number>) => [key, ...args], {
  numberOfKeys: 1,
  lua: `${prelude}
local now = nowOf(ARGV[1])
local W = tonumber(ARGV[2])
if redis.call("EXISTS", KEYS[1]) == 0 then return cjson.encode({0, 0, 0, 0}) end
local s = load(KEYS[1])
if expire(s, W, now) then save(KEYS[1], s, W, now) end
return cjson.encode(used(s))
`
}).withReturnType<string>()
