-- set_inflight_idle sets the idle time of entries a consumer holds. With 0 it
-- keeps entries the consumer is still processing fresh, so a handler slower
-- than the claim idle limit keeps its message instead of another consumer
-- claiming it and running it twice. With the idle limit it releases entries a
-- closing consumer will not process, so others claim them at once instead of
-- waiting. Only entries the consumer still owns are touched: it never takes one
-- back from another consumer.
--
-- KEYS[1]  stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3]  idle time to set, milliseconds
-- ARGV[4…] stream entry IDs held by this consumer
--
-- Returns the IDs the consumer no longer owns.
local owned = {}
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    owned[#owned + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #owned > 0 then
  -- JUSTID sets the idle time without counting another delivery.
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(owned) do
    args[#args + 1] = id
  end
  args[#args + 1] = 'IDLE'
  args[#args + 1] = ARGV[3]
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return lost
