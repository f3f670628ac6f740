-- trim_stream removes from a topic's stream the entries that every consumer
-- group has finished with and that are older than the retention window, and
-- reports which groups hold older entries back.
--
-- An entry is finished by a group when the group has read it (its ID is at or
-- before the group's last-delivered-id) and it is not pending in the group.
-- So group g needs every entry from min(oldest pending ID, the ID just after
-- last-delivered-id) on, and the stream may lose every entry before the
-- smallest such point over all groups, and before now minus the retention
-- window. A group created with '$' has a last-delivered-id at the stream's end
-- when it was created; one created with '0' has 0-0 and needs everything.
-- Reading the groups and trimming happen in this one script, so no read,
-- claim or new group can slip in between. A stream with no consumer group
-- is never trimmed: nothing says who has read what.
--
-- Only last-delivered-id and the pending summary are used, never lag, so the
-- script behaves the same on Redis 6.2 (whose XINFO GROUPS has no lag) and
-- 7.x. Lag is only used, when present, to report how many entries a group
-- has not read yet.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  retention window, milliseconds: entries younger than this stay
-- ARGV[2]  "1" to trim, "0" to report only (dry run)
-- ARGV[3]  most entries counted, with XRANGE, as a group's unread entries when
--          the server gives no lag (Redis 6.2); the count stops there
--
-- Returns {trimmed, minid, cutoff, length, first, groups}:
--   trimmed  entries removed (0 in a dry run)
--   minid    the ID before which entries may go, "" when none may (no stream
--            or no group)
--   cutoff   now minus the retention window, as an ID "<ms>-0" (server clock)
--   length   entries left in the stream
--   first    ID of the stream's first entry after trimming, "" when empty
--   groups   for each group {name, needed, pending, oldest pending ID or "",
--            unread, unread exact (1) or a lower bound (0), last-delivered-id,
--            held}: needed is the first ID the group still needs, held the
--            oldest entry older than the cutoff kept for it ("" when none)
if redis.replicate_commands then
  -- Redis 6.2 replicates scripts verbatim unless told otherwise, and refuses
  -- writes after TIME, XINFO or XPENDING; Redis 7 always replicates effects.
  redis.replicate_commands()
end

-- IDs are compared as two unsigned integers written in decimal without
-- leading zeros: a longer string is larger, and equal lengths compare as text.
local function cmpNum(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

local function split(id)
  local dash = string.find(id, '-', 1, true)
  if not dash then
    return id, '0'
  end
  return string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
end

local function cmpID(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  local c = cmpNum(am, bm)
  if c ~= 0 then
    return c
  end
  return cmpNum(as, bs)
end

local function minID(a, b)
  if cmpID(a, b) <= 0 then
    return a
  end
  return b
end

-- incDigits adds one to a decimal string.
local function incDigits(s)
  local digits = {}
  for i = 1, #s do
    digits[i] = string.byte(s, i) - 48
  end
  local i = #digits
  while i >= 1 do
    if digits[i] < 9 then
      digits[i] = digits[i] + 1
      break
    end
    digits[i] = 0
    i = i - 1
  end
  local out = {}
  if i == 0 then
    out[1] = '1'
  end
  for j = 1, #digits do
    out[#out + 1] = string.char(48 + digits[j])
  end
  return table.concat(out)
end

-- nextID is the smallest ID after id. A sequence of 20 digits may be at the
-- 64-bit limit: then id itself is kept, which only keeps one entry more.
local function nextID(id)
  local ms, seq = split(id)
  if #seq >= 20 then
    return id
  end
  return ms .. '-' .. incDigits(seq)
end

local function fields(list)
  local m = {}
  for i = 1, #list, 2 do
    m[list[i]] = list[i + 1]
  end
  return m
end

local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cutoffMs = nowMs - tonumber(ARGV[1])
if cutoffMs < 0 then
  cutoffMs = 0
end
local cutoff = string.format('%d', cutoffMs) .. '-0'
local doTrim = ARGV[2] == '1'
local countCap = tonumber(ARGV[3])

if redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then
  return {0, '', cutoff, 0, '', {}}
end

local groups = {}
local minid = ''
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = fields(raw)
  local name = g['name']
  local lastID = g['last-delivered-id']
  local summary = redis.call('XPENDING', KEYS[1], name)
  local pending = summary[1]
  local oldest = ''
  local needed = nextID(lastID)
  if pending > 0 and summary[2] then
    oldest = summary[2]
    needed = minID(needed, oldest)
  end
  -- The group holds entries back when it still needs one older than the
  -- cutoff; heldFrom is the oldest such entry.
  local heldFrom = ''
  if cutoffMs > 0 and cmpID(needed, cutoff) < 0 then
    local held = redis.call('XRANGE', KEYS[1], needed, '(' .. cutoff, 'COUNT', 1)
    if #held > 0 then
      heldFrom = held[1][1]
    end
  end
  local unread, exact = -1, 1
  local lag = g['lag']
  if type(lag) == 'number' then
    unread = lag
  elseif heldFrom ~= '' then
    -- No lag (Redis 6.2, or 7 after deletions inside the group's range):
    -- count, boundedly, only for a group that holds entries back.
    local after = redis.call('XRANGE', KEYS[1], '(' .. lastID, '+', 'COUNT', countCap)
    unread = #after
    if unread >= countCap then
      exact = 0
    end
  end
  groups[#groups + 1] = {name, needed, pending, oldest, unread, exact, lastID, heldFrom}
  if minid == '' then
    minid = needed
  else
    minid = minID(minid, needed)
  end
end

local trimmed = 0
if minid ~= '' then
  minid = minID(minid, cutoff)
  if doTrim then
    trimmed = redis.call('XTRIM', KEYS[1], 'MINID', minid)
  end
end
local first = ''
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #head > 0 then
  first = head[1][1]
end
return {trimmed, minid, cutoff, redis.call('XLEN', KEYS[1]), first, groups}
