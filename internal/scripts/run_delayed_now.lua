-- run_delayed_now moves delayed messages into their stream at once, whatever
-- their due time. Each member still in the set is removed in the same atomic
-- step that adds it to the stream, as move_due does, so a message that a
-- delayed-message mover moves at the same moment enters the stream once.
--
-- KEYS[1]  delayed sorted set
-- KEYS[2]  the stream its messages go to
-- ARGV, for each message in turn:
--   the sorted-set member
--   n, the number of field and value items that follow
--   n items: field, value, field, value… of the entry to add
--
-- Returns one reply per message, in order: the new entry's ID, or false when
-- the member was no longer in the set (already moved; nothing was written).
local results = {}
local i = 1
while i <= #ARGV do
  local member = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  local fields = {}
  for j = 1, n do
    fields[j] = ARGV[i + 1 + j]
  end
  i = i + 2 + n
  if redis.call('ZSCORE', KEYS[1], member) then
    results[#results + 1] = redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('ZREM', KEYS[1], member)
  else
    results[#results + 1] = false
  end
end
return results
