-- acquire_dedup_key takes the deduplication key of a message for one copy of
-- it, before the copy's handler runs. A copy with more failed attempts than
-- the holder is a later retry of the same message (the holder failed), and
-- takes the key over.
--
-- KEYS[1]  the deduplication key
-- ARGV[1]  this copy's ID (random, one per copy)
-- ARGV[2]  this copy's failed attempts (redrive_retry_attempts)
-- ARGV[3]  lease, milliseconds: how long the key is held between refreshes
-- ARGV[4]  the value of a key whose message was handled (DedupDoneMarker)
--
-- The key holds ARGV[4] or its holder's token, 'p:<attempts>:<ID>', which
-- only this script builds and reads.
--
-- Returns {'acquired', token} (run the handler; settle_dedup_key takes the
-- token), {'done'} (a copy succeeded within the window: drop this one) or
-- {'busy'} (a copy is being handled now).
local v = redis.call('GET', KEYS[1])
if v == ARGV[4] then
  return {'done'}
end
if v then
  local held = tonumber(string.match(v, '^p:(%d+):'))
  if held ~= nil and tonumber(ARGV[2]) <= held then
    return {'busy'}
  end
end
local token = 'p:' .. ARGV[2] .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return {'acquired', token}
