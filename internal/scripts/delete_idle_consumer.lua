-- delete_idle_consumer removes a consumer from a group only when it has no
-- pending entries, checked in the same atomic step: deleting a consumer drops
-- its pending entries, which would lose them.
--
-- KEYS[1]  stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
--
-- Returns 1 when deleted, 0 when it still has pending entries.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
