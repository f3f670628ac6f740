-- requeue_poisoned_cross_slot is the first step of a requeue between two
-- Redis Cluster slots, where no script can reach both the poison stream and
-- the target. It adds the message to its target and records a marker in the
-- target's slot, in one atomic step; the caller then deletes the poison
-- entry. If the caller dies between the two steps the message is in both
-- places (never in neither), and a second requeue of the same poison entry
-- finds the marker and does not add it again: it only finishes the deletion.
--
-- KEYS[1]  target stream (a topic's stream, or a group's retry stream)
-- KEYS[2]  marker key, in KEYS[1]'s slot, named after the poison stream and
--          the poison entry ID
-- ARGV[1]  marker lifetime, milliseconds
-- ARGV[2…] field, value, field, value… of the entry to add
--
-- Returns the entry's ID in the target: added now, or by an earlier requeue.
local done = redis.call('GET', KEYS[2])
if done then
  return done
end
local fields = {}
for i = 2, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id
