-- ack_delete acks entries of a group's private retry stream and deletes them,
-- so the retry stream holds only retries that are still waiting or in flight.
--
-- KEYS[1]  the group's retry stream
-- ARGV[1]  consumer group
-- ARGV[2…] stream entry IDs
--
-- Returns the number of entries acked.
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
