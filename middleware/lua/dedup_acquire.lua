-- Takes the deduplication key of a message before its handler runs.
-- Returns 'acquired' (run the handler), 'done' (a copy succeeded within the
-- window: drop this one) or 'busy' (a copy is being handled now). A copy
-- with more failed attempts than the holder is a later retry of the same
-- message, which takes the key over.
--
-- KEYS[1]  the deduplication key
-- ARGV[1]  this copy's token: "p:<attempts>:<random>"
-- ARGV[2]  this copy's failed attempts (redrive_retry_attempts)
-- ARGV[3]  lease, in milliseconds
local v = redis.call('GET', KEYS[1])
if not v then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
	return 'acquired'
end
if v == 'done' then
	return 'done'
end
local held = tonumber(string.match(v, '^p:(%d+):'))
if held == nil or tonumber(ARGV[2]) > held then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
	return 'acquired'
end
return 'busy'
