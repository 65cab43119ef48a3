"""The Lua scripts behind every configuration write of the Redis state store.

Each write is one script, so its checks, the change, ``INCR revision`` and
the ``PUBLISH`` on the change channel run atomically.  KEYS of every script:
revision, apps, links, models, model_counts, current (the hashes described
in :mod:`clipper_core.stores.redis`).  ARGV[1] is the change channel; a
script returns ``"ok"`` or an error code the store turns into a
clipper-core error.
"""

from __future__ import annotations

# ARGV: channel, name, record JSON, linked model ('' for none)
ADD_APP = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 'app_exists' end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

DELETE_APP = """
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 'app_missing' end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, name, field, record JSON (without "seq"), version, make_current
ADD_MODEL = """
if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then return 'model_exists' end
local rev = redis.call('INCR', KEYS[1])
local rec = string.sub(ARGV[4], 1, -2) .. ',"seq":' .. rev .. '}'
redis.call('HSET', KEYS[4], ARGV[3], rec)
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
if ARGV[6] == '1' then redis.call('HSET', KEYS[6], ARGV[2], ARGV[5]) end
redis.call('PUBLISH', ARGV[1], rev)
return 'ok'
"""

# ARGV: channel, name, field, version
DELETE_MODEL = """
if redis.call('HDEL', KEYS[4], ARGV[3]) == 0 then return 'version_missing' end
if redis.call('HINCRBY', KEYS[5], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[5], ARGV[2]) end
if redis.call('HGET', KEYS[6], ARGV[2]) == ARGV[4] then redis.call('HDEL', KEYS[6], ARGV[2]) end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

SET_CURRENT = """
if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 0 then return 'version_missing' end
redis.call('HSET', KEYS[6], ARGV[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, app, model ('' unlinks)
SET_LINK = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 'app_missing' end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[3], ARGV[2])
else
  if redis.call('HEXISTS', KEYS[5], ARGV[3]) == 0 then return 'model_missing' end
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, app, record JSON (with its "selection"), primary model ('' for
# none), then every linked model (each must exist)
SET_SELECTION = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 'app_missing' end
for i = 5, #ARGV do
  if redis.call('HEXISTS', KEYS[5], ARGV[i]) == 0 then return 'model_missing:' .. ARGV[i] end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, at_least; returns the revision (not "ok")
ADVANCE_REVISION = """
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[2])
if rev >= want then return rev end
redis.call('SET', KEYS[1], want)
redis.call('PUBLISH', ARGV[1], want)
return want
"""

#: Script name -> source, as the store registers them.
SCRIPTS = {"add_app": ADD_APP, "delete_app": DELETE_APP, "add_model": ADD_MODEL,
           "delete_model": DELETE_MODEL, "set_current": SET_CURRENT, "set_link": SET_LINK,
           "set_selection": SET_SELECTION, "advance_revision": ADVANCE_REVISION}
