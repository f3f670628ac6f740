-- settle_dedup_key settles the deduplication key held by a copy: 'done' keeps
-- it for the window (later copies are dropped), 'failed' deletes it (so the
-- message's retry runs), 'refresh' extends the lease while the handler still
-- runs. Nothing happens when the key is no longer this copy's.
--
-- KEYS[1]  the deduplication key
-- ARGV[1]  the copy's token (from acquire_dedup_key)
-- ARGV[2]  'done', 'failed' or 'refresh'
-- ARGV[3]  'done': the window, milliseconds; 'refresh': the lease,
--          milliseconds; 'failed': absent
-- ARGV[4]  'done' only: the value of a key whose message was handled
--          (DedupDoneMarker)
--
-- Returns 1 when settled, 0 when the key was no longer this copy's (its lease
-- ran out, or a later retry took it over), in which case nothing changed.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'done' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
elseif ARGV[2] == 'failed' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'refresh' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  return redis.error_reply('settle_dedup_key: unknown outcome ' .. ARGV[2])
end
return 1
