-- claim_idle takes over entries that another consumer of the group left pending for
-- longer than the idle limit (it died, or lost its connection).
--
-- A consumer keeps the entries it is processing fresh (set_inflight_idle), so
-- an entry idle this long is abandoned, whoever owns it. Entries delivered
-- max-deliveries times or more are not claimed: they are returned so the
-- caller moves them to the poison stream (a message whose handler kills the
-- process must not loop forever). Entries that no longer
-- exist (trimmed or deleted) are acked away instead of claimed forever.
--
-- KEYS[1]  stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer that takes the entries
-- ARGV[3]  idle limit, milliseconds
-- ARGV[4]  most entries to look at
-- ARGV[5]  max deliveries; 0 means no limit
--
-- Returns {claimed, exceeded, removed}:
--   claimed   {id, {field, value, …}} for each entry now owned by ARGV[2]
--   exceeded  {id, delivery count, {field, value, …}} for each entry over the limit
--   removed   number of pending entries acked because the entry no longer exists
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', tonumber(ARGV[3]), '-', '+', tonumber(ARGV[4]))
local maxDeliveries = tonumber(ARGV[5])
local toClaim = {}
local exceeded = {}
local removed = 0
for _, p in ipairs(pending) do
  local id, deliveries = p[1], p[4]
  if maxDeliveries > 0 and deliveries >= maxDeliveries then
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry == 0 then
      redis.call('XACK', KEYS[1], ARGV[1], id)
      removed = removed + 1
    else
      exceeded[#exceeded + 1] = {id, deliveries, entry[1][2]}
    end
  else
    toClaim[#toClaim + 1] = id
  end
end
local claimed = {}
if #toClaim > 0 then
  local result = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), unpack(toClaim))
  local present = {}
  for _, entry in ipairs(result) do
    if entry and entry ~= false then
      claimed[#claimed + 1] = entry
      present[entry[1]] = true
    end
  end
  -- A deleted entry is not returned: Redis 7 drops it from the pending list
  -- itself, older servers answer nil and keep it pending. Either way it is
  -- counted as removed.
  for _, id in ipairs(toClaim) do
    if not present[id] and #redis.call('XRANGE', KEYS[1], id, id) == 0 then
      if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) > 0 then
        redis.call('XACK', KEYS[1], ARGV[1], id)
      end
      removed = removed + 1
    end
  end
end
return {claimed, exceeded, removed}
