//! The Lua scripts behind every basket write: each runs atomically in Redis, so a
//! read-modify-write of one basket never interleaves with another.

// Shared head of every basket write script. KEYS[1] is the basket; ARGV[1] the current time
// and ARGV[2] the new expiry (Unix ms, computed by the caller so the values are exact
// integers); script-specific arguments start at ARGV[3]. Each script answers
// {status, detail, HGETALL...}: the state right after the change, read atomically with it.
macro_rules! script_head {
    () => {
        r#"
local key = KEYS[1]
local function touch()
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('HSET', key, 'u', ARGV[1], 'e', ARGV[2])
  redis.call('PEXPIREAT', key, ARGV[2])
end
local function reply(status, detail)
  local out = {status, tostring(detail)}
  for _, v in ipairs(redis.call('HGETALL', key)) do out[#out + 1] = v end
  return out
end
local function drop_lines()
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local kind = string.sub(f, 1, 2)
    if kind == 'q:' or kind == 'o:' then redis.call('HDEL', key, f) end
  end
  redis.call('HDEL', key, 'c')
end
"#
    };
}

/// ARGV[3] product, ARGV[4] units to add, ARGV[5] most units per line, ARGV[6] most lines.
pub(super) const ADD: &str = concat!(
    script_head!(),
    r#"
local qf = 'q:' .. ARGV[3]
local current = tonumber(redis.call('HGET', key, qf) or '0')
local wanted = current + tonumber(ARGV[4])
if wanted > tonumber(ARGV[5]) then return reply('too_many', current) end
if current == 0 then
  local lines = 0
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'q:' then lines = lines + 1 end
  end
  if lines >= tonumber(ARGV[6]) then return reply('full', lines) end
  redis.call('HSET', key, 'o:' .. ARGV[3], redis.call('HINCRBY', key, 's', 1))
end
redis.call('HSET', key, qf, wanted)
touch()
return reply('ok', wanted)
"#
);

/// ARGV[3] product, ARGV[4] new units (0 removes the line).
pub(super) const UPDATE: &str = concat!(
    script_head!(),
    r#"
local qf = 'q:' .. ARGV[3]
if redis.call('HEXISTS', key, qf) == 0 then return reply('missing', 0) end
if ARGV[4] == '0' then
  redis.call('HDEL', key, qf, 'o:' .. ARGV[3])
else
  redis.call('HSET', key, qf, ARGV[4])
end
touch()
return reply('ok', 0)
"#
);

/// ARGV[3] product. Removing an absent product changes nothing (not even the expiry).
pub(super) const REMOVE: &str = concat!(
    script_head!(),
    r#"
if redis.call('HDEL', key, 'q:' .. ARGV[3], 'o:' .. ARGV[3]) > 0 then touch() end
return reply('ok', 0)
"#
);

/// Empties an existing basket; a basket never used stays that way.
pub(super) const CLEAR: &str = concat!(
    script_head!(),
    r#"
if redis.call('EXISTS', key) == 1 then
  drop_lines()
  touch()
end
return reply('ok', 0)
"#
);

/// ARGV[3] coupon code, empty to remove it.
pub(super) const SET_COUPON: &str = concat!(
    script_head!(),
    r#"
if ARGV[3] == '' then
  if redis.call('HDEL', key, 'c') > 0 then touch() end
else
  redis.call('HSET', key, 'c', ARGV[3])
  touch()
end
return reply('ok', 0)
"#
);

/// ARGV[3] the version a checkout was taken from: empties the basket only if it is still at
/// that version, so a line added while the order was being placed survives.
pub(super) const EMPTY_IF_VERSION: &str = concat!(
    script_head!(),
    r#"
if redis.call('HGET', key, 'v') ~= ARGV[3] then return reply('changed', 0) end
drop_lines()
touch()
return reply('ok', 0)
"#
);

/// KEYS[1] the checkout record; ARGV[1] items, ARGV[2] version, ARGV[3] TTL in ms. The first
/// checkout with a key records what it sends; every later one gets that record back.
pub(super) const RECORD_CHECKOUT: &str = r#"
local existing = redis.call('HMGET', KEYS[1], 'items', 'version')
if existing[1] then return existing end
redis.call('HSET', KEYS[1], 'items', ARGV[1], 'version', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {ARGV[1], ARGV[2]}
"#;
