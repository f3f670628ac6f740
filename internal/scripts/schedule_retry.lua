-- schedule_retry acks a failed delivery and schedules the message again in a
-- delayed set, atomically: a crash can neither lose the message nor leave it
-- both pending and scheduled.
--
-- KEYS[1]  stream the delivery came from
-- KEYS[2]  delayed sorted set the message waits in
-- ARGV[1]  consumer group
-- ARGV[2]  stream entry ID of the delivery
-- ARGV[3]  "1" to delete the entry from KEYS[1] (a group's private retry stream)
-- ARGV[4]  due time, Unix milliseconds (the score)
-- ARGV[5]  sorted-set member (the encoded message)
-- ARGV[6]  "1" when this consumer acked the entry itself before (InstantAck):
--          schedule even though it is no longer pending
--
-- Returns 1 when scheduled, 0 when the entry was no longer pending because
-- another consumer settled it, in which case nothing is scheduled.
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 0 and ARGV[6] ~= '1' then
  return 0
end
if ARGV[3] == '1' then
  redis.call('XDEL', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
