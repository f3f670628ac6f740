-- move_due moves delayed messages whose due time has come into their stream.
-- Many processes may run it at once: each member is removed in the same atomic
-- step that adds it to the stream, so it enters the stream exactly once.
--
-- KEYS[1]  delayed sorted set (score = due time, Unix milliseconds)
-- KEYS[2]  target stream
-- ARGV[1]  now, Unix milliseconds (the caller's clock, the one due times use)
-- ARGV[2]  most members to move in this call
-- ARGV[3]  approximate MAXLEN for the stream; 0 means no trimming
-- ARGV[4]  field under which a member that cannot be decoded enters the stream
-- ARGV[5]  prefix every member starts with (its format version)
--
-- Returns {moved, next}: how many members moved, and the score of the earliest
-- member still waiting as a string, or false when the set is empty.
local corruptField = ARGV[4]
local prefix = ARGV[5]

-- Parses a member written by wire.EncodeDelayedMember:
-- <prefix><id>:<len>:<field><len>:<value>… Returns the field/value list, or nil.
local function decode(member)
  if string.sub(member, 1, #prefix) ~= prefix then
    return nil
  end
  local idEnd = string.find(member, ':', #prefix + 1, true)
  if not idEnd then
    return nil
  end
  local fields = {}
  local i, n = idEnd + 1, #member
  while i <= n do
    local colon = string.find(member, ':', i, true)
    if not colon then
      return nil
    end
    local len = tonumber(string.sub(member, i, colon - 1))
    if not len or len < 0 or colon + len > n then
      return nil
    end
    fields[#fields + 1] = string.sub(member, colon + 1, colon + len)
    i = colon + len + 1
  end
  if #fields == 0 or #fields % 2 ~= 0 then
    return nil
  end
  return fields
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local maxlen = tonumber(ARGV[3])
for _, member in ipairs(due) do
  local fields = decode(member)
  if not fields then
    -- A member nobody can decode must not block the set forever: it goes to the
    -- stream as a raw field, where the subscriber moves it to the poison stream.
    fields = {corruptField, member}
  end
  if maxlen > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  else
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  end
  redis.call('ZREM', KEYS[1], member)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head == 0 then
  return {#due, false}
end
return {#due, head[2]}
