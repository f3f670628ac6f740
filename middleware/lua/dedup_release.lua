-- Settles the deduplication key held by a copy: 'done' keeps it for the
-- window, 'failed' deletes it (so the message's retry runs), 'refresh'
-- extends the lease while the handler still runs. Nothing happens when the
-- key is no longer this copy's.
--
-- KEYS[1]  the deduplication key
-- ARGV[1]  the copy's token
-- ARGV[2]  'done', 'failed' or 'refresh'
-- ARGV[3]  window (done) or lease (refresh), in milliseconds
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if ARGV[2] == 'done' then
	redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3])
elseif ARGV[2] == 'failed' then
	redis.call('DEL', KEYS[1])
else
	redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
