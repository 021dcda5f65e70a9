"""The Redis Lua scripts of the fan-out channel layer, and the storage layout they share.

A message body is stored once per shard, in a hash at ``prefix + message_id`` holding the
serialized ``body`` and the number of ``readers`` still to read it; it expires after
``expiry`` seconds. Every recipient gets a small entry, ``"<message_id>|<local part>"``,
pushed onto the list ``prefix + <non-local channel name>``: the local part is what follows
the ``!`` of a process-local channel (empty for other channels), so the many sockets of one
daphne share one list and one body. The reader that brings ``readers`` down to zero
deletes the body.

Channel names cannot contain ``|`` and message ids are hex, so an entry splits unambiguously
at its first ``|``. The entries are not the plain message keys asgi_redis pushes, so every
process using a Redis prefix must use this layer.

The scripts build key names from the prefix rather than taking them all in KEYS, as
asgi_redis's own flush script does; like asgi_redis, they do not target Redis Cluster.
Needs Redis 4.0 or later (HSET with several fields).
"""

# The handshake lane (fanout_layer.layer.HANDSHAKE_LANE): a daphne that takes from its lane marks
# it read for READER_SECONDS, longer than its longest wait in BLPOP between takes.
LANE_SUFFIX = "^handshake"
READER_SUFFIX = ":reader"
READER_SECONDS = 60
_LANE = f"""
local LANE, READER, READER_SECONDS = '{LANE_SUFFIX}', '{READER_SUFFIX}', {READER_SECONDS}
"""

# Argument header shared by DELIVER and SEND_GROUP:
#   ARGV[1] message id, ARGV[2] serialized body, ARGV[3] expiry (seconds),
#   ARGV[4] key prefix, ARGV[5] statistics prefix, ARGV[6] global statistics key prefix,
#   ARGV[7] per-channel statistics expiry, ARGV[8] global statistics expiry.
# Both return {number of entries pushed, full channel name of each recipient left out}.
# The statistics keys and names are those of asgi_redis's statistics extension
# (STAT_MESSAGES_COUNT, STAT_CHANNEL_FULL), so its global_statistics() keeps counting.
_PUSH = (
    _LANE
    + """
local message_id, body, expiry = ARGV[1], ARGV[2], tonumber(ARGV[3])
local prefix, stats_prefix, global_stats = ARGV[4], ARGV[5], ARGV[6]
local channel_stats_expiry, global_stats_expiry = tonumber(ARGV[7]), tonumber(ARGV[8])
local pushed, left_out = 0, {}

local function count(name, stat, amount)
    local key = stats_prefix .. name .. ':' .. stat
    redis.call('INCRBY', key, amount)
    redis.call('EXPIRE', key, channel_stats_expiry)
    key = global_stats .. stat
    redis.call('INCRBY', key, amount)
    redis.call('EXPIRE', key, global_stats_expiry)
end

-- One entry per local part onto the list of `name`, as many as its capacity leaves room for.
-- A handshake lane (a name ending in LANE) is used only while its daphne reads it (its reader
-- mark, which TAKE renews): a daphne of an older release gets the answer on its reply channel.
local function push(name, capacity, local_parts)
    if string.sub(name, -#LANE) == LANE and redis.call('EXISTS', prefix .. name .. READER) == 0 then
        name = string.sub(name, 1, #name - #LANE)
    end
    local key = prefix .. name
    local room = capacity - redis.call('LLEN', key)
    local accepted = math.max(0, math.min(room, #local_parts))
    -- unpack() is bounded by Lua's C stack, so a daphne with thousands of sockets in
    -- the group gets its entries in a few RPUSHes rather than one.
    for first = 1, accepted, 1000 do
        local entries = {}
        for i = first, math.min(first + 999, accepted) do
            entries[#entries + 1] = message_id .. '|' .. local_parts[i]
        end
        redis.call('RPUSH', key, unpack(entries))
    end
    if accepted > 0 then
        -- Never shortened: a message of shorter expiry (send_with_expiry) must not take the
        -- list, and the longer-lived entries before it, with it.
        if redis.call('TTL', key) < expiry + 1 then
            redis.call('EXPIRE', key, expiry + 1)
        end
        count(name, 'messages_count', accepted)
        pushed = pushed + accepted
    end
    if accepted < #local_parts then
        count(name, 'channel_full_count', #local_parts - accepted)
        for i = accepted + 1, #local_parts do
            left_out[#left_out + 1] = name .. local_parts[i]
        end
    end
end

-- The body is written last, and only if someone is going to read it.
local function finish()
    if pushed > 0 then
        redis.call('HSET', KEYS[1], 'body', body, 'readers', pushed)
        redis.call('EXPIRE', KEYS[1], expiry)
    end
    local result = {pushed}
    for _, channel in ipairs(left_out) do
        result[#result + 1] = channel
    end
    return result
end
"""
)

# Sends one message to recipients the caller has grouped by list.
# KEYS[1]: body key. ARGV[9...]: for each list, its non-local name, its capacity,
# the number n of recipients on it, then their n local parts.
DELIVER = (
    _PUSH
    + """
local i = 9
while i <= #ARGV do
    local name, capacity, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local local_parts = {}
    for j = 1, n do
        local_parts[j] = ARGV[i + 2 + j]
    end
    push(name, capacity, local_parts)
    i = i + 3 + n
end
return finish()
"""
)

# Reads a group's members and sends them one message: the whole send_group in one round
# trip, for a single Redis whose capacities depend on nothing but the "!" in a name.
# KEYS[1]: body key, KEYS[2]: group key. ARGV[9]: membership cutoff (members added at or
# before it have expired), ARGV[10]: capacity, ARGV[11]: capacity of process-local lists.
SEND_GROUP = (
    _PUSH
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], 0, ARGV[9])
local lists, order = {}, {}
for _, channel in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local name, local_part = channel, ''
    local bang = string.find(channel, '!', 1, true)
    if bang then
        name, local_part = string.sub(channel, 1, bang), string.sub(channel, bang + 1)
    end
    if not lists[name] then
        lists[name] = {}
        order[#order + 1] = name
    end
    table.insert(lists[name], local_part)
end
for _, name in ipairs(order) do
    local capacity = tonumber(ARGV[10])
    if string.find(name, '!', 1, true) then
        capacity = tonumber(ARGV[11])
    end
    push(name, capacity, lists[name])
end
return finish()
"""
)

# Adds a member to a group; the group's key lives as long as its newest member (nothing in it
# outlives group_expiry). KEYS[1]: group key. ARGV[1]: the channel, ARGV[2]: now (its score),
# ARGV[3]: group_expiry (s).
GROUP_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return redis.call('EXPIRE', KEYS[1], ARGV[3])
"""

# A group's live members: drops the expired ones and lists the rest in one round trip.
# KEYS[1]: group key. ARGV[1]: membership cutoff.
GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Takes messages off lists: up to a batch of them from lists only this process reads
# ("!" and "?" channels), at most one from a list other processes read too, and then
# nothing else, so a message another worker could have handled never waits in this
# process's buffer. Entries whose body has expired are dropped on the way.
# KEYS: the lists. ARGV[1]: key prefix, ARGV[2]: batch size, ARGV[2 + i]: '1' if KEYS[i]
# is read by other processes too. Optionally ARGV[3 + #KEYS], ARGV[4 + #KEYS]: the number
# of a list and an entry BLPOP has already taken off it, to be read first.
# Returns {b, b bodies, then for each message: its list's number, its local part, the
# number of its body}: a fan-out to many sockets of one daphne sends its body back once.
TAKE = (
    _LANE
    + """
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local bodies, numbers, items = {}, {}, {}
local taken = 0

local function take(list, entry)
    local bar = string.find(entry, '|', 1, true)
    if not bar then
        return false
    end
    local message_id = string.sub(entry, 1, bar - 1)
    local key = prefix .. message_id
    local number = numbers[message_id]
    if not number then
        local body = redis.call('HGET', key, 'body')
        if not body then
            return false
        end
        bodies[#bodies + 1] = body
        number = #bodies
        numbers[message_id] = number
    end
    if redis.call('HINCRBY', key, 'readers', -1) <= 0 then
        redis.call('DEL', key)
    end
    items[#items + 1] = list
    items[#items + 1] = string.sub(entry, bar + 1)
    items[#items + 1] = number
    taken = taken + 1
    return true
end

local function result()
    local reply = {#bodies}
    for _, body in ipairs(bodies) do
        reply[#reply + 1] = body
    end
    for _, item in ipairs(items) do
        reply[#reply + 1] = item
    end
    return reply
end

local pending = tonumber(ARGV[3 + #KEYS])
if pending and take(pending, ARGV[4 + #KEYS]) and ARGV[2 + pending] == '1' then
    return result()
end
for list = 1, #KEYS do
    if string.sub(KEYS[list], -#LANE) == LANE then
        redis.call('SET', KEYS[list] .. READER, '1', 'EX', READER_SECONDS)
    end
    local shared = ARGV[2 + list] == '1'
    if not (shared and taken > 0) then
        while taken < limit do
            local entry = redis.call('LPOP', KEYS[list])
            if not entry then
                break
            end
            if take(list, entry) and shared then
                return result()
            end
        end
    end
end
return result()
"""
)
