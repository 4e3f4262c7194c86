"""The Lua scripts of the Redis store: each is one atomic step on the server.

Keys are built from the prefix ``ARGV[1]`` inside the scripts, so the store
needs one Redis (or Valkey) primary, not a cluster. Lease expiry is Redis's
own ``PX`` timer: the server's clock decides when a lease is free.
"""

FINISH = """
local p, job, run_id = ARGV[1], ARGV[2], ARGV[3]
local member = ARGV[4] .. string.format('%020d', redis.call('INCR', p .. 'seq'))
local runs, data = p .. 'runs:' .. job, p .. 'rundata:' .. job
local function forget(j, m)
  redis.call('ZREM', p .. 'runs:' .. j, m)
  redis.call('HDEL', p .. 'rundata:' .. j, m)
end
redis.call('HDEL', p .. 'inflight', run_id)
local prev = redis.call('HGET', p .. 'runidx', run_id)
if prev then
  local pj, pm = string.match(prev, '^(.*)\\n(%d+)$')
  forget(pj, pm)
end
redis.call('ZADD', runs, 0, member)
redis.call('HSET', data, member, ARGV[5])
redis.call('HSET', p .. 'runidx', run_id, job .. '\\n' .. member)
if ARGV[6] ~= '' then redis.call('HSET', p .. 'job:' .. job, 'cf', ARGV[6], 'as', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', p .. 'job:' .. job, 'success', ARGV[5]) end
local old = redis.call('ZRANGEBYLEX', runs, '-', '(' .. ARGV[9])
local excess = redis.call('ZCARD', runs) - #old - tonumber(ARGV[10])
if excess > 0 then
  for _, m in ipairs(redis.call('ZRANGE', runs, #old, #old + excess - 1)) do table.insert(old, m) end
end
for _, m in ipairs(old) do
  local row = redis.call('HGET', data, m)
  if row then redis.call('HDEL', p .. 'runidx', cjson.decode(row)[1]) end
  forget(job, m)
end
return 1
"""

STARTED = """
local p, job = ARGV[1], ARGV[2]
redis.call('HSET', p .. 'inflight', ARGV[3], ARGV[4])
redis.call('HSETNX', p .. 'job:' .. job, 'cf', '0')
if ARGV[5] ~= '' then
  local cur = redis.call('HGET', p .. 'job:' .. job, 'slot')
  if not cur or tonumber(cur) < tonumber(ARGV[5]) then
    redis.call('HSET', p .. 'job:' .. job, 'slot', ARGV[5])
  end
end
return 1
"""

ACQUIRE = """
local lease, holder, ttl = ARGV[1] .. 'lease', ARGV[2], ARGV[3]
local cur = redis.call('GET', lease)
if cur then
  local h, e = string.match(cur, '^(.*)\\n(%d+)$')
  if h == holder then redis.call('PEXPIRE', lease, ttl) end
  return {h, tonumber(e), redis.call('PTTL', lease)}
end
local epoch = redis.call('INCR', ARGV[1] .. 'epoch')
redis.call('SET', lease, holder .. '\\n' .. epoch, 'PX', ttl)
return {holder, epoch, 0}
"""

RENEW = """
if redis.call('GET', ARGV[1] .. 'lease') == ARGV[2] .. '\\n' .. ARGV[3] then
  return redis.call('PEXPIRE', ARGV[1] .. 'lease', ARGV[4])
end
return 0
"""

RELEASE = """
if redis.call('GET', ARGV[1] .. 'lease') == ARGV[2] .. '\\n' .. ARGV[3] then
  return redis.call('DEL', ARGV[1] .. 'lease')
end
return 0
"""

CLAIM = """
local p, holder, epoch, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', p .. 'lease') ~= holder .. '\\n' .. epoch then return {'not_leader', key} end
if ARGV[5] == '1' then key = key .. redis.call('HINCRBY', p .. 'job:' .. ARGV[6], 'counter', 1) end
local owner = holder .. '\\n' .. epoch
if redis.call('SET', p .. 'claim:' .. key, owner .. '\\nrunning', 'NX') then
  redis.call('HSET', p .. 'running', key, owner)
  return {'won', key}
end
return {'lost', key, redis.call('GET', p .. 'claim:' .. key)}
"""

FINISH_CLAIM = """
local k = ARGV[1] .. 'claim:' .. ARGV[2]
local owner = ARGV[3] .. '\\n' .. ARGV[4]
if redis.call('GET', k) ~= owner .. '\\nrunning' then return 0 end
redis.call('SET', k, owner .. '\\ndone', 'EX', ARGV[5])
redis.call('HDEL', ARGV[1] .. 'running', ARGV[2])
return 1
"""

SWEEP = """
local p, epoch, found = ARGV[1], tonumber(ARGV[2]), {}
local running = redis.call('HGETALL', p .. 'running')
for i = 1, #running, 2 do
  local key, owner = running[i], running[i + 1]
  local h, e = string.match(owner, '^(.*)\\n(%d+)$')
  if tonumber(e) < epoch then
    redis.call('SET', p .. 'claim:' .. key, owner .. '\\nabandoned', 'EX', ARGV[3])
    redis.call('HDEL', p .. 'running', key)
    table.insert(found, key); table.insert(found, h); table.insert(found, e)
  end
end
return found
"""
