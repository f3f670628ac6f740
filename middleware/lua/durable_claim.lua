-- Claims the durable retries that are due: they stay in the set, re-scored
-- to the end of a lease, so no other instance publishes them meanwhile, and
-- one whose publisher crashed is published again when the lease ends.
--
-- KEYS[1]  sorted set of retries, scored by due time in milliseconds
-- ARGV[1]  now, in milliseconds
-- ARGV[2]  lease, in milliseconds
-- ARGV[3]  most members to claim
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local leaseEnd = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
	redis.call('ZADD', KEYS[1], 'XX', leaseEnd, member)
end
return due
