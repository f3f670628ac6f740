-- move_to_poison moves one delivery to a poison stream and acks it,
-- atomically.
--
-- KEYS[1]  stream the delivery came from
-- KEYS[2]  poison stream
-- ARGV[1]  consumer group
-- ARGV[2]  stream entry ID of the delivery
-- ARGV[3]  "1" to delete the entry from KEYS[1] (a group's private retry stream)
-- ARGV[4]  "1" when this consumer acked the entry itself before (InstantAck):
--          write even though it is no longer pending
-- ARGV[5…] field, value, field, value… of the poison entry
--
-- Returns the poison entry's ID, or false when the entry was no longer pending
-- because another consumer settled it, in which case nothing is written.
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 0 and ARGV[4] ~= '1' then
  return false
end
if ARGV[3] == '1' then
  redis.call('XDEL', KEYS[1], ARGV[2])
end
local fields = {}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
return redis.call('XADD', KEYS[2], '*', unpack(fields))
