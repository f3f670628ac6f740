-- requeue_poisoned moves poisoned messages back to their target streams.
-- Each message is moved atomically (the whole call is): the poison entry is
-- checked to still exist, the message is added to its target, and the poison
-- entry is deleted, so a message is never in both places and never in
-- neither. Two operators requeuing or purging the same entry at once cannot
-- duplicate it: the second finds it gone.
--
-- Used when every key is on one server: a single Redis, or a Redis Cluster
-- where the poison stream and all targets share one slot. Across slots,
-- requeue_poisoned_cross_slot does the first of two steps.
--
-- KEYS[1]     poison stream
-- KEYS[2…]    target streams (a topic's stream, or a group's retry stream)
-- ARGV, for each message in turn:
--   poison entry ID
--   index in KEYS of its target stream (2 or more)
--   n, the number of field and value items that follow
--   n items: field, value, field, value… of the entry to add
--
-- Returns one reply per message, in order: the new entry's ID in its target;
-- false when the poison entry no longer exists (nothing was written); or "!"
-- followed by Redis's error when the XADD was refused (a target key of
-- another type, say), in which case the poison entry stays. Catching the error
-- keeps one bad target from failing the messages after it in the batch.
local results = {}
local i = 1
while i <= #ARGV do
  local id = ARGV[i]
  local target = KEYS[tonumber(ARGV[i + 1])]
  local n = tonumber(ARGV[i + 2])
  local fields = {}
  for j = 1, n do
    fields[j] = ARGV[i + 2 + j]
  end
  i = i + 3 + n
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    results[#results + 1] = false
  else
    local added = redis.pcall('XADD', target, '*', unpack(fields))
    if type(added) == 'table' and added.err then
      results[#results + 1] = '!' .. added.err
    else
      results[#results + 1] = added
      redis.call('XDEL', KEYS[1], id)
    end
  end
end
return results
