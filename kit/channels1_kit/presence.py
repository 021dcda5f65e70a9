"""Who is in a group, counted without a table: presence in the channel layer's Redis.

A chat room's "3 people here" kept as database rows serializes its joins: every join and leave
locks the room's row (and, on SQLite, the whole database) for its transaction, so that the
count it announces is exact. Here a group's presence lives beside the group, on the Redis
shard that holds the group's key, and each join and leave is one Lua script, atomic there:

* `<prefix>presence:<group>:s`, a hash: each socket in the group, with its person and when it
  joined (the sweep's "known since");
* `<prefix>presence:<group>:u`, a hash: each person with how many of their sockets are in;
  its length is the group's member count, so a person with three tabs counts once;
* `<prefix>presence:<group>:n`, the group's presence number, `seq`: one more at every change of
  the people present, so that a page can tell a late count from a newer one. It starts from
  the clock (milliseconds x 1000) when the key is new, so that after Redis restarts empty the
  numbers go on rising rather than start again below what the pages hold;
* `<prefix>presence:socket:<socket>`, a set on the socket's own shard: the groups it is in,
  which its disconnect leaves without asking the app.

A socket that goes (a disconnect, or the sweep finding it gone) while it is its person's last
in the group does not make them leave at once: they stay counted, in `<prefix>presence:grace`
(a sorted set by deadline, per shard), for CHANNELS1_KIT_PRESENCE_GRACE_SECONDS. A page that
reconnects within that, as after a deploy or a network blip, comes back with no "left" and
"joined" in between; otherwise each worker's reaper (a thread, every second) takes the person
out and tells the app, which announces the leave. A leave the person asks for is at once.

Apps register what the kit must tell them, from AppConfig.ready():

    presence.register("chat", prefix="chat.room.", announce=services.presence_announce,
                      groups=selectors.presence_group_names)

`announce(change)` is called for the changes the kit makes on its own (a grace that ran out);
for joins and leaves, the caller gets the Change back and announces it itself. `groups()`
lists the app's groups that still exist: presence kept for any other group of its prefix (a
room deleted while a join was on its way) is dropped by the sweep.

An empty Redis restart loses presence with the groups; daphne then closes every socket
(4503), and the pages' rejoins count everyone again. With a layer that has no Redis (the
in-memory layer of tests), presence lives in this process, with the same rules.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from channels1_kit import periodic, redis_client
from channels1_kit.conf import channel_layer, setting

logger = logging.getLogger(__name__)

JOINED = "joined"
LEFT = "left"
# The person and the time of joining, in a socket's entry: "<user>\t<seconds>".
SEPARATOR = "\t"
# A grace entry: "<group>\n<user>" (group names have no newline: channels allows [a-zA-Z0-9_.-]).
GRACE_SEPARATOR = "\n"
# How many expired graces one reaper call takes per shard.
REAP_BATCH = 500


@dataclass(frozen=True)
class Change:
    """What one join, leave or expiry did to a group's presence."""

    group: str
    # The app's key for the person (the user's primary key, say), as given to join().
    user: str
    # People in the group after it (a person within their grace still counts).
    members: int
    # The group's presence number after it: higher is newer.
    seq: int
    # JOINED or LEFT when the people present changed, None when they did not (another tab of
    # someone already here, a socket of someone within their grace, a socket not in the group).
    announce: Optional[str] = None


@dataclass(frozen=True)
class _App:
    label: str
    prefix: str
    announce: Callable[[Change], None]
    groups: Callable[[], Iterable[str]]


_apps: Dict[str, _App] = {}


def register(
    label: str, *, prefix: str, announce: Callable[[Change], None], groups: Callable[[], Iterable[str]]
) -> None:
    """The app `label` counts people in its groups named `prefix...`; call from AppConfig.ready()."""
    from channels1_kit import sockets

    _apps[label] = _App(label=label, prefix=prefix, announce=announce, groups=groups)
    # The sweep reads the daphnes' socket lists once for everything; presence takes part in it.
    sockets.register("channels1_kit.presence", groups=tuple, sockets=all_sockets, forget=forget_gone)


def unregister(label: str) -> None:
    from channels1_kit import sockets

    _apps.pop(label, None)
    if not _apps:
        sockets.unregister("channels1_kit.presence")


def _app_of(group: str) -> Optional[_App]:
    return next((app for app in _apps.values() if group.startswith(app.prefix)), None)


def grace_seconds() -> float:
    return setting("PRESENCE_GRACE_SECONDS")


# The stores: Redis (one Lua script per change), or this process for a layer without Redis.

_SEQ = """
local function seq_current(key, now_ms)
  local seq = redis.call('GET', key)
  if not seq then
    redis.call('SET', key, now_ms * 1000)
    return now_ms * 1000
  end
  return tonumber(seq)
end
local function seq_next(key, now_ms)
  seq_current(key, now_ms)
  return redis.call('INCR', key)
end
"""

# KEYS: sockets, users, seq, grace, the shard's group index. ARGV: socket, user, group, now (ms),
# expiry (s). Returns {announce (0/1), members, seq}.
JOIN = (
    _SEQ
    + """
redis.call('SADD', KEYS[5], ARGV[3])
local announce = 0
local entry = ARGV[2] .. '\\t' .. string.format('%.3f', ARGV[4] / 1000)
if redis.call('HSETNX', KEYS[1], ARGV[1], entry) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    if redis.call('ZREM', KEYS[4], ARGV[3] .. '\\n' .. ARGV[2]) == 0 then
      announce = 1
    end
  end
end
local seq
if announce == 1 then seq = seq_next(KEYS[3], ARGV[4]) else seq = seq_current(KEYS[3], ARGV[4]) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return {announce, redis.call('HLEN', KEYS[2]), seq}
"""
)

# KEYS: sockets, users, seq, grace. ARGV: socket, group, now (ms), grace (ms).
# Returns {announce (0/1), user or '', members, seq}.
LEAVE = (
    _SEQ
    + """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return {0, '', redis.call('HLEN', KEYS[2]), seq_current(KEYS[3], ARGV[3])}
end
redis.call('HDEL', KEYS[1], ARGV[1])
local user = string.sub(entry, 1, string.find(entry, '\\t', 1, true) - 1)
local announce = 0
if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
  if tonumber(ARGV[4]) > 0 then
    redis.call('HSET', KEYS[2], user, 0)
    redis.call('ZADD', KEYS[4], ARGV[3] + ARGV[4], ARGV[2] .. '\\n' .. user)
  else
    redis.call('HDEL', KEYS[2], user)
    redis.call('ZREM', KEYS[4], ARGV[2] .. '\\n' .. user)
    announce = 1
  end
end
local seq
if announce == 1 then seq = seq_next(KEYS[3], ARGV[3]) else seq = seq_current(KEYS[3], ARGV[3]) end
return {announce, user, redis.call('HLEN', KEYS[2]), seq}
"""
)

# KEYS: the shard's grace set. ARGV: now (ms), key prefix ("<prefix>presence:"), batch.
# Graces that ran out: each person with no socket back is taken out. The group's keys are
# named from the entry, on this shard (a group's keys and its grace entries share its shard).
# Returns {{group, user, members, seq}, ...}.
REAP = (
    _SEQ
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local cut = string.find(member, '\\n', 1, true)
  local group, user = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
  local base = ARGV[2] .. group
  local count = redis.call('HGET', base .. ':u', user)
  if count and tonumber(count) <= 0 then
    redis.call('HDEL', base .. ':u', user)
    local seq = seq_next(base .. ':n', ARGV[1])
    table.insert(out, {group, user, redis.call('HLEN', base .. ':u'), seq})
  end
end
return out
"""
)


# KEYS: a socket's set of groups. ARGV: the group, the expiry (s). The socket's index of its groups,
# in one call (it may live on another shard than the group's keys).
SOCKET_ADD = """
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('EXPIRE', KEYS[1], ARGV[2])
"""

# Scripts by name, each registered once: EVALSHA with the body sent again only to a Redis that
# does not know it (a restart), as redis-py's Script does.
_SCRIPTS = {"join": JOIN, "leave": LEAVE, "reap": REAP, "socket_add": SOCKET_ADD}
_registered: Dict[str, object] = {}


def _run(redis, name: str, keys: list, args: list):
    script = _registered.get(name)
    if script is None:
        script = _registered[name] = redis.register_script(_SCRIPTS[name])
    # The kit's short path: a join and a leave are on every chat join's and disconnect's way.
    return redis_client.script(redis, script, keys, args)


class _RedisStore:
    def __init__(self, layer):
        self.layer = layer
        self.base = f"{layer.prefix}presence:"

    def _group(self, group: str):
        redis = self.layer.connection(self.layer.consistent_hash(group))
        keys = [f"{self.base}{group}:{part}" for part in ("s", "u", "n")]
        return redis, keys + [f"{self.base}grace", f"{self.base}groups"]

    def _socket(self, socket: str):
        return self.layer.connection(self.layer.consistent_hash(socket)), f"{self.base}socket:{socket}"

    def join(self, group: str, socket: str, user: str, now: float) -> Change:
        redis, keys = self._group(group)
        expiry = max(int(self.layer.group_expiry), 1)
        announce, members, seq = _run(redis, "join", keys, [socket, user, group, int(now * 1000), expiry])
        redis, key = self._socket(socket)
        _run(redis, "socket_add", [key], [group, expiry])
        return Change(group=group, user=user, members=int(members), seq=int(seq), announce=JOINED if announce else None)

    def leave(self, group: str, socket: str, now: float, grace: float) -> Optional[Change]:
        redis, keys = self._group(group)
        args = [socket, group, int(now * 1000), int(grace * 1000)]
        announce, user, members, seq = _run(redis, "leave", keys[:4], args)
        redis, key = self._socket(socket)
        redis_client.command(redis, "SREM", key, group)
        if not user:
            return None
        user = user.decode("utf8") if isinstance(user, bytes) else user
        return Change(group=group, user=user, members=int(members), seq=int(seq), announce=LEFT if announce else None)

    def groups_of(self, socket: str) -> List[str]:
        redis, key = self._socket(socket)
        return sorted(member.decode("utf8") for member in redis_client.command(redis, "SMEMBERS", key))

    def forget_socket(self, socket: str) -> None:
        redis, key = self._socket(socket)
        redis_client.command(redis, "DEL", key)

    def counts(self, groups: List[str]) -> Dict[str, Tuple[int, int]]:
        found = {}
        for group in groups:
            redis, keys = self._group(group)
            pipe = redis.pipeline(transaction=False)
            pipe.hlen(keys[1])
            pipe.get(keys[2])
            members, seq = pipe.execute()
            found[group] = (int(members), int(seq or 0))
        return found

    def sockets(self, group: str) -> List[Tuple[str, str, float]]:
        redis, keys = self._group(group)
        found = []
        for socket, entry in redis.hgetall(keys[0]).items():
            user, _, since = entry.decode("utf8").rpartition(SEPARATOR)
            found.append((socket.decode("utf8"), user, float(since)))
        return sorted(found)

    def groups(self) -> List[str]:
        found = set()
        for index in range(len(self.layer.hosts)):
            found |= {group.decode("utf8") for group in self.layer.connection(index).smembers(f"{self.base}groups")}
        return sorted(found)

    def drop(self, group: str) -> List[str]:
        redis, keys = self._group(group)
        sockets = [socket.decode("utf8") for socket in redis.hkeys(keys[0])]
        graced = [f"{group}{GRACE_SEPARATOR}{user.decode('utf8')}" for user in redis.hkeys(keys[1])]
        pipe = redis.pipeline()
        pipe.delete(*keys[:3])
        if graced:
            pipe.zrem(keys[3], *graced)
        pipe.srem(keys[4], group)
        pipe.execute()
        for socket in sockets:
            socket_redis, key = self._socket(socket)
            socket_redis.srem(key, group)
        return sorted(sockets)

    def reap(self, now: float) -> List[Change]:
        changes = []
        for index in range(len(self.layer.hosts)):
            redis = self.layer.connection(index)
            rows = _run(redis, "reap", [f"{self.base}grace"], [int(now * 1000), self.base, REAP_BATCH])
            for group, user, members, seq in rows:
                changes.append(
                    Change(
                        group=group.decode("utf8"),
                        user=user.decode("utf8"),
                        members=int(members),
                        seq=int(seq),
                        announce=LEFT,
                    )
                )
        return changes


class _LocalStore:
    """The same rules in this process, for a layer without Redis."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sockets_in: Dict[str, Dict[str, Tuple[str, float]]] = {}
        self.users_in: Dict[str, Dict[str, int]] = {}
        self.seqs: Dict[str, int] = {}
        self.graces: Dict[Tuple[str, str], float] = {}
        self.groups_by_socket: Dict[str, set] = {}

    def _seq(self, group: str, now: float, *, bump: bool) -> int:
        seq = self.seqs.setdefault(group, int(now * 1000) * 1000)
        if bump:
            seq = self.seqs[group] = seq + 1
        return seq

    def join(self, group: str, socket: str, user: str, now: float) -> Change:
        with self.lock:
            sockets, users = self.sockets_in.setdefault(group, {}), self.users_in.setdefault(group, {})
            announce = False
            if socket not in sockets:
                sockets[socket] = (user, now)
                users[user] = users.get(user, 0) + 1
                if users[user] == 1 and self.graces.pop((group, user), None) is None:
                    announce = True
            self.groups_by_socket.setdefault(socket, set()).add(group)
            seq = self._seq(group, now, bump=announce)
            return Change(group=group, user=user, members=len(users), seq=seq, announce=JOINED if announce else None)

    def leave(self, group: str, socket: str, now: float, grace: float) -> Optional[Change]:
        with self.lock:
            self.groups_by_socket.get(socket, set()).discard(group)
            sockets, users = self.sockets_in.get(group, {}), self.users_in.get(group, {})
            if socket not in sockets:
                return None
            user, _ = sockets.pop(socket)
            users[user] -= 1
            announce = False
            if users[user] <= 0:
                if grace > 0:
                    users[user] = 0
                    self.graces[(group, user)] = now + grace
                else:
                    del users[user]
                    self.graces.pop((group, user), None)
                    announce = True
            seq = self._seq(group, now, bump=announce)
            return Change(group=group, user=user, members=len(users), seq=seq, announce=LEFT if announce else None)

    def groups_of(self, socket: str) -> List[str]:
        with self.lock:
            return sorted(self.groups_by_socket.get(socket, ()))

    def forget_socket(self, socket: str) -> None:
        with self.lock:
            self.groups_by_socket.pop(socket, None)

    def counts(self, groups: List[str]) -> Dict[str, Tuple[int, int]]:
        with self.lock:
            return {group: (len(self.users_in.get(group, {})), self.seqs.get(group, 0)) for group in groups}

    def sockets(self, group: str) -> List[Tuple[str, str, float]]:
        with self.lock:
            return sorted((socket, user, since) for socket, (user, since) in self.sockets_in.get(group, {}).items())

    def groups(self) -> List[str]:
        with self.lock:
            return sorted(group for group, users in self.users_in.items() if users or self.sockets_in.get(group))

    def drop(self, group: str) -> List[str]:
        with self.lock:
            sockets = sorted(self.sockets_in.pop(group, {}))
            for user in self.users_in.pop(group, {}):
                self.graces.pop((group, user), None)
            self.seqs.pop(group, None)
            for socket in sockets:
                self.groups_by_socket.get(socket, set()).discard(group)
            return sockets

    def reap(self, now: float) -> List[Change]:
        changes = []
        with self.lock:
            for (group, user), deadline in sorted(self.graces.items(), key=lambda item: item[1]):
                if deadline > now:
                    continue
                del self.graces[(group, user)]
                users = self.users_in.get(group, {})
                if users.get(user, -1) <= 0 and user in users:
                    del users[user]
                    seq = self._seq(group, now, bump=True)
                    changes.append(Change(group=group, user=user, members=len(users), seq=seq, announce=LEFT))
        return changes


_local = _LocalStore()


def _store():
    layer = channel_layer()
    return _RedisStore(layer) if hasattr(layer, "connection") else _local


# What the apps call.


def join(group: str, *, socket: str, user: str) -> Change:
    """Puts the socket (a reply channel) in the group's presence, as the person `user`."""
    return _store().join(group, socket, str(user), time.time())


def leave(group: str, *, socket: str) -> Optional[Change]:
    """The socket leaves the group because its person asked to: if it was their last socket there,
    they are gone at once (announce LEFT). None if the socket was not in the group."""
    return _store().leave(group, socket, time.time(), 0)


def disconnect(socket: str) -> List[Change]:
    """The socket is gone (its websocket.disconnect): it leaves every group it was in, and its
    person, if it was their last socket there, stays counted for the grace period."""
    store = _store()
    now, grace = time.time(), grace_seconds()
    changes = [change for group in store.groups_of(socket) if (change := store.leave(group, socket, now, grace))]
    store.forget_socket(socket)
    return changes


def members(group: str) -> int:
    """People in the group: one for each person with a socket in it (or within their grace)."""
    return _store().counts([group])[group][0]


def counts(groups: Iterable[str]) -> Dict[str, int]:
    return {group: members for group, (members, _) in _store().counts(list(groups)).items()}


def state(groups: Iterable[str]) -> Dict[str, Tuple[int, int]]:
    """Each group's people and presence number now (0 for a group no one has joined yet): what a
    page rendered now shows, to be replaced by any frame with a higher number."""
    return _store().counts(list(groups))


def sockets_in(group: str) -> List[str]:
    return [socket for socket, _, _ in _store().sockets(group)]


def drop_group(group: str) -> List[str]:
    """Forgets the group's presence (the group is gone: a room deleted); returns its sockets."""
    return _store().drop(group)


def all_sockets() -> List[Tuple[str, float]]:
    """Every socket some group's presence counts, with when it joined first: the sweep's input."""
    store = _store()
    first: Dict[str, float] = {}
    for group in store.groups():
        for socket, _, since in store.sockets(group):
            first[socket] = min(since, first.get(socket, since))
    return sorted(first.items())


def forget_gone(*, gone: Callable[[str, float], bool]) -> int:
    """The sweep's part: every socket the daphnes' lists say is gone leaves its groups as at a
    disconnect (its person within the grace); presence of an app's group that no longer exists is
    dropped. Returns how many socket entries it removed."""
    store = _store()
    now, grace = time.time(), grace_seconds()
    removed = 0
    current = {label: set(app.groups()) for label, app in _apps.items()}
    for group in store.groups():
        app = _app_of(group)
        if app is not None and group not in current[app.label]:
            removed += len(store.drop(group))
            continue
        for socket, _, since in store.sockets(group):
            change = store.leave(group, socket, now, grace) if gone(socket, since) else None
            if change is not None:
                removed += 1
                # With no grace (0) its person is gone at once: no reaper will tell their app.
                if change.announce is not None:
                    _tell(change)
    if removed:
        logger.info("Presence: removed %d socket(s) of gone sockets or groups", removed)
    return removed


def reap(now: Optional[float] = None) -> List[Change]:
    """Takes out every person whose grace ran out with no socket back, and tells their app."""
    changes = _store().reap(time.time() if now is None else now)
    for change in changes:
        _tell(change)
    return changes


def _tell(change: Change) -> None:
    """Tells the app of the group a change the kit made on its own."""
    app = _app_of(change.group)
    if app is None:
        return
    try:
        app.announce(change)
    except Exception:
        logger.exception("presence: announcing %s in %s failed", change.announce, change.group)


def start_reaper(sender, **kwargs) -> None:
    """worker_process_ready receiver: takes out people whose grace ran out, every second, in a thread."""
    if not _apps:
        return
    interval = min(1.0, max(grace_seconds() / 4, 0.1))
    periodic.start("presence reaper", reap, interval=interval)
