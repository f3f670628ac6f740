-- claim_durable_retries claims the durable retries that are due: they stay
-- in the set, re-scored to the end of a lease, so no other instance publishes
-- them meanwhile, and one whose publisher crashed is published again when the
-- lease ends.
--
-- KEYS[1]  sorted set of retries, scored by due time in Unix milliseconds
-- ARGV[1]  now, Unix milliseconds
-- ARGV[2]  lease, milliseconds
-- ARGV[3]  most members to claim
--
-- Returns the claimed members (empty when none is due).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local leaseEnd = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', leaseEnd, member)
end
return due
