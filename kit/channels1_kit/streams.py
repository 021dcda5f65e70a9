"""Streams whose reconnects daphne answers itself, with no worker.

A stream is a read-only socket path that puts each socket in one group and catches a page up
with `?since=<the number of the last change it saw>`: the liveblog's. After a deploy or an
outage every page of a stream reconnects. Through a worker, each of those is a
websocket.connect into Redis, a consumer (its query, its group add, its accept, its catch-up
read) and a websocket.disconnect later: the reconnect storm a rolling restart makes is mostly
that work, and a page waits behind the others' for it.

An app registers the stream (`register`, from AppConfig.ready: daphne's process loads the apps
too) and, after every change commits and before its broadcast, publishes it (`publish`): the
stream's group, the number of the change, and the frame its broadcast sends. The layer's Redis
keeps each stream's head (group and latest number) and its last LOG_LENGTH changes' frames.
When a handshake on the stream's path asks for a `since` the log covers, the daphne that took
it, in one Redis script, puts the socket in the group and reads the frames after `since`; it
accepts the socket and sends them, then the app's `synced` frame. Every change published after
that script reaches the socket through the group. Any other handshake goes to the workers as
before: a page further behind than the log (or ahead of the head), a log with a hole (a change
committed and not yet published, or one whose publish failed), a stream with no head in Redis
(a Redis restarted empty: the consumer publishes the head again), an Origin the consumer would
refuse. The socket's disconnect is daphne's too: it leaves the group, and no worker hears of
it. Its frames go to the workers as any socket's do.

Heads and logs expire HEAD_SECONDS after they were last published (the consumer publishes the
head on each connect it serves), and a deleted stream's head is replaced by a tombstone
(`forget`) that a late publish of the same group cannot overwrite. Only for a layer of one
Redis (fanout_layer, one host): with shards, every handshake goes to the workers.
"""

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Pattern
from urllib.parse import parse_qs

from channels1_kit import redis_client
from channels1_kit.conf import channel_layer, setting
from channels1_kit.websocket import frame_text

logger = logging.getLogger(__name__)

# A head and its log live this long after they were last published.
HEAD_SECONDS = 600
# Changes a stream's log keeps: a page that missed more is caught up by a worker.
LOG_LENGTH = 100

# KEYS: the head, the log. ARGV: group, seq, seconds, log length, then the change's frame (or
# nothing: the consumer's publish of the head it read). The head only moves forward for its
# group (a consumer's publish of what it read may land after a later change's), never comes
# back over the tombstone of the same group, and starts a new log for a new group. Each entry
# of the log is "<seq>:<frame>", scored by its seq.
PUBLISH = """
if redis.call('HGET', KEYS[1], 'gone') == ARGV[1] then
  return 0
end
local group, seq = unpack(redis.call('HMGET', KEYS[1], 'group', 'seq'))
if group ~= ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'group', ARGV[1], 'seq', ARGV[2])
elseif tonumber(seq) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
end
if ARGV[5] then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2] .. ':' .. ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[4]))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the head, the log. ARGV: group, seconds.
FORGET = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'gone', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: the head, the log. ARGV: since, the socket's channel, now, group_expiry, the layer's
# group key prefix. If the log holds every change after `since` up to the head, puts the socket
# in the stream's group and returns {group, head, frames of those changes in order}.
JOIN = """
local group, seq = unpack(redis.call('HMGET', KEYS[1], 'group', 'seq'))
if not group then
  return false
end
local since, head = tonumber(ARGV[1]), tonumber(seq)
local missed = {}
if since > head then
  return false
end
if since < head then
  missed = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], seq)
  if #missed ~= head - since then
    return false
  end
end
local key = ARGV[5] .. group
redis.call('ZADD', key, ARGV[3], ARGV[2])
redis.call('EXPIRE', key, ARGV[4])
return {group, head, missed}
"""

# A change number Lua's numbers hold exactly.
_DIGITS = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class _Stream:
    name: str
    path: Pattern
    key: str
    since: str
    allowed_hosts_only: bool
    synced: Optional[Callable[[int], dict]]


@dataclass(frozen=True)
class Joined:
    """A socket daphne put in its stream's group: the texts to send it after the accept."""

    group: str
    texts: List[str]


_streams: Dict[str, _Stream] = {}
_scripts: Dict[str, Any] = {}


def register(
    name: str,
    *,
    path: str,
    key: str = "key",
    since: str = "since",
    synced: Optional[Callable[[int], dict]] = None,
    allowed_hosts_only: bool = True,
) -> None:
    """The app's stream `name` has its sockets on `path`, a pattern whose named group `key` is the
    stream's key in publish (a liveblog's slug), and they ask for what they missed with the query
    parameter `since`. `synced(seq)`: the frame that ends a catch-up, as the consumer sends it.
    Call from AppConfig.ready().

    The stream's consumers keep nothing per socket (no channel session, no enforce_ordering: a
    socket accepted by daphne has had no connect run). allowed_hosts_only: its connect refuses an
    Origin outside ALLOWED_HOSTS (channels' allowed_hosts_only), so daphne answers only those."""
    pattern = re.compile(path)
    if key not in pattern.groupindex:
        raise ValueError(f"the path of stream {name!r} has no named group {key!r}: {path!r}")
    _streams[name] = _Stream(
        name=name, path=pattern, key=key, since=since, allowed_hosts_only=allowed_hosts_only, synced=synced
    )


def unregister(name: str) -> None:
    _streams.pop(name, None)


def _layer_of_one_redis(layer=None):
    layer = layer if layer is not None else channel_layer()
    if not hasattr(layer, "connection") or not hasattr(layer, "_group_key") or len(layer.hosts) != 1:
        return None
    return layer


def _keys(layer, name: str, key: str) -> List[str]:
    """The stream's head and log."""
    head = f"{layer.prefix}:stream:{name}:{key}"
    return [head, head + ":log"]


def _run(layer, script: str, keys: list, args: list) -> Any:
    connection = layer.connection(0)
    registered = _scripts.get(script)
    if registered is None:
        registered = _scripts[script] = connection.register_script(script)
    return redis_client.script(connection, registered, keys, args)


def publish(name: str, *, key: str, group: str, seq: int, frame: Optional[dict] = None) -> None:
    """Stream `name`'s `key` is in `group`, and its change `seq` was broadcast as `frame`: call after
    the change commits and before its broadcast (transaction.on_commit callbacks run in order).
    Without `frame`, the head only (the consumer that served a connect, with what it read). A
    Redis error is logged: the workers serve the pages that missed it."""
    layer = _layer_of_one_redis()
    if layer is None or name not in _streams:
        return
    args = [group, int(seq), HEAD_SECONDS, LOG_LENGTH]
    if frame is not None:
        args.append(frame_text(frame))
    try:
        _run(layer, PUBLISH, _keys(layer, name, key), args)
    except Exception:
        logger.exception("stream %s %s: could not publish change %s", name, key, seq)


def forget(name: str, *, key: str, group: str) -> None:
    """Stream `name`'s `key` is gone (deleted, or renamed away from `key`): no daphne answers
    for it any more. Call after the commit, before the broadcast that tells the pages."""
    layer = _layer_of_one_redis()
    if layer is None or name not in _streams:
        return
    try:
        _run(layer, FORGET, _keys(layer, name, key), [group, HEAD_SECONDS])
    except Exception:
        logger.exception("stream %s %s: could not forget its head", name, key)


def _origin_allowed(message: dict) -> bool:
    from channels.security.websockets import AllowedHostsOnlyOriginValidator

    origins = [value for name, value in message.get("headers") or [] if name == b"origin"]
    if len(origins) != 1:
        return False
    try:
        origin = origins[0].decode("ascii")
    except UnicodeDecodeError:
        return False
    return bool(AllowedHostsOnlyOriginValidator.validate_origin(None, message, origin))


def join_if_caught_up(layer, message: dict) -> Optional[Joined]:
    """For daphne's websocket.connect: if it is a registered stream's page whose `since` the
    stream's log covers, the socket is now in the stream's group: accept it here and send it the
    texts. Else None: to the workers."""
    if not _streams or not setting("DIRECT_STREAMS"):
        return None
    layer = _layer_of_one_redis(layer)
    path = message.get("path")
    if layer is None or not isinstance(path, str):
        return None
    for stream in _streams.values():
        match = stream.path.match(path)
        if match is not None:
            break
    else:
        return None
    raw = message.get("query_string") or b""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    since = parse_qs(raw).get(stream.since)
    if not since or not _DIGITS.fullmatch(since[-1]):
        return None
    if stream.allowed_hosts_only and not _origin_allowed(message):
        return None
    group_prefix = layer._group_key("").decode("utf8")
    args = [int(since[-1]), message["reply_channel"], time.time(), layer.group_expiry, group_prefix]
    reply = _run(layer, JOIN, _keys(layer, stream.name, match.group(stream.key)), args)
    if not reply:
        return None
    group, head, missed = reply
    texts = [entry.decode("utf8").split(":", 1)[1] for entry in missed]
    if texts and stream.synced is not None:
        texts.append(frame_text(stream.synced(int(head))))
    return Joined(group=group.decode("utf8"), texts=texts)
