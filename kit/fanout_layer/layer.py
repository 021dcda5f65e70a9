"""asgi_redis's channel layer, changed where group fan-out to many sockets loses or costs.

``FanoutRedisChannelLayer`` takes asgi_redis's CONFIG keys and keeps its sharding, prefix,
expiry, group expiry, encryption, flush and statistics. It changes:

* Capacity: every socket of one daphne shares its reply channel (``daphne.response.X!``),
  so process-local channels get their own, much larger capacity
  (``process_local_capacity``); ``channel_capacity`` patterns still win over both defaults.
* ``send_group`` serializes the message once, stores it once per shard, and sends it in one
  round trip per shard (one in all on a single Redis with no ``channel_capacity``). A
  member whose channel is full is still left out, as ASGI allows, but never silently:
  every ChannelFull is counted (``channel_full_count``, and asgi_redis's Redis-side
  statistics) and logged as a warning on the ``fanout_layer`` logger.
* Receiving takes a batch of messages in one round trip off channels only this process
  reads, and hands them out one per call; the Twisted path (``receive_twisted``, used by
  daphne) keeps one connection per shard open instead of opening one per message, and
  replaces it if it drops or stops answering.
* ``hosts`` URLs mean the same on both paths (``channels1_kit.redis_urls``): ``rediss://``
  with its certificate options, ACL users (``redis://user:password@host``), and one clear
  error naming the URL, password masked, for a refused password or certificate or an
  unknown host. The layer's str() masks passwords too.

* Every Redis call and every (de)serialization is the layer's own, on current redis-py (through
  ``channels1_kit.redis_client``'s short command path) and msgpack >= 1.0 with its C extension:
  asgi_redis 1.4.3 calls redis-py 2.10.6's zadd() and msgpack 0.5's ``encoding=``, which current
  releases removed. What the layer still inherits from asgi_redis (sharding, the consistent hash,
  new_channel, group_discard, flush, the statistics' reads) makes calls that redis-py 8 answers
  as 2.10.6 did.

The storage layout is described in ``fanout_layer.lua``; it differs from asgi_redis's,
so all processes sharing a prefix must use this layer. The bytes stored are those of the
layer on msgpack-python 0.5.6 (``tests/fanout_layer/test_wire.py``): old and new processes can
share a prefix during a rolling deploy.
"""

import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from asgi_redis import RedisChannelLayer
from asgi_redis.twisted_utils import defer

from channels1_kit import redis_client, redis_urls

from . import lua

try:
    import txredisapi
except ImportError:  # Only daphne's Twisted receive path needs it.
    txredisapi = None

logger = logging.getLogger("fanout_layer")

Received = tuple[str | None, dict | None]
# Values a message's shallow copy shares safely with another: none can be changed in place.
_IMMUTABLE = (str, bytes, int, float, bool, type(None))
NOTHING: Received = (None, None)

# How many left-out channels one warning names; the count is always complete.
LOGGED_CHANNELS = 10


def pack(message: Any) -> bytes:
    """A message's bytes in Redis: msgpack with bin for bytes and str for text, as asgi_redis packs."""
    return msgpack.packb(message, use_bin_type=True)


def unpack(body: bytes) -> Any:
    """The message of pack()'s bytes, as asgi_redis unpacked them on msgpack 0.5 (``encoding="utf8"``):
    str for text, bytes for bin, and any key a message's dicts had (msgpack 1.0 refuses keys other
    than str and bytes by default)."""
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


@dataclass(frozen=True)
class _Take:
    """Run the TAKE script on a shard."""

    index: int
    keys: list[str]
    args: list[Any]


@dataclass(frozen=True)
class _Wait:
    """BLPOP the lists of a shard for up to timeout seconds."""

    index: int
    keys: list[str]
    timeout: int


class _Bodies:
    """The bodies of one TAKE reply, each unpacked once for all its recipients in the batch
    (one group message for hundreds of sockets of a daphne). Each recipient still gets a
    message of its own to change: a copy, where a shallow copy is a whole one, else the body
    unpacked again."""

    def __init__(self, bodies: list[bytes | None]) -> None:
        self._bodies = bodies
        self._unpacked: dict[int, dict | None] = {}

    def message(self, index: int) -> dict | None:
        """Body `index` for one more recipient; None if it could not be decrypted."""
        body = self._bodies[index]
        if body is None:
            return None
        if index in self._unpacked:
            shared = self._unpacked[index]
            return dict(shared) if shared is not None else unpack(body)
        message = unpack(body)
        flat = isinstance(message, dict) and all(isinstance(value, _IMMUTABLE) for value in message.values())
        self._unpacked[index] = message if flat else None
        return dict(message) if flat else message


class _Waiting:
    """Messages a batched take brought back beyond the one handed out, by receive name.

    Only channels no other process reads end up here, so holding them back from Redis
    takes nothing from anyone. Worker threads share one layer, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, deque[tuple[str, dict]]] = {}

    def put(self, name: str, channel: str, message: dict) -> None:
        with self._lock:
            self._by_name.setdefault(name, deque()).append((channel, message))

    def pop(self, names: Iterable[str]) -> tuple[str, dict] | None:
        with self._lock:
            for name in names:
                queue = self._by_name.get(name)
                if queue:
                    item = queue.popleft()
                    if not queue:
                        # Names include each socket's enforce_ordering wait channel: an empty
                        # queue kept per name would grow a worker by every socket ever parked.
                        del self._by_name[name]
                    return item
        return None

    def __len__(self) -> int:
        """How many names have messages waiting."""
        with self._lock:
            return len(self._by_name)

    def clear(self) -> None:
        with self._lock:
            self._by_name.clear()


# A worker's answer to a WebSocket handshake (the first message a socket gets) is pushed onto a
# list of its own beside the daphne's reply channel, and taken before it. A daphne fanning a
# message out to thousands of its sockets has thousands of entries waiting on its reply channel;
# an answer behind them waited out daphne's 5 s connect timeout (or found the list full) during a
# reconnect storm, and the page was refused after a worker had done the work. Nothing can be
# reordered by it: nothing reaches a socket before its handshake is answered. "^" is not allowed
# in channel names. The lane is used only while its daphne reads it (lua.py), so daphnes and
# workers of this release and older ones can share a prefix during a rolling deploy.
HANDSHAKE_LANE = lua.LANE_SUFFIX
HANDSHAKE_ANSWERS = ({"accept": True}, {"accept": False})


class FanoutRedisChannelLayer(RedisChannelLayer):
    """Redis channel layer for sites that fan messages out to many sockets per daphne.

    Takes asgi_redis's CONFIG keys plus:

    * ``process_local_capacity``: capacity of process-local channels (those with a "!",
      shared by all sockets of one interface server), unless a ``channel_capacity``
      pattern matches. Default 10,000.
    * ``receive_batch_size``: the most messages one round trip takes off channels only
      this process reads. Default 100.
    """

    # Seconds a reply from Redis may take, beyond a BLPOP's own wait, before receive_twisted
    # takes its connection for dead. A kept-open connection can die without a word (a
    # half-open TCP connection), and a BLPOP on it would wait forever.
    reply_timeout = 10
    # Longest pause, in seconds, between attempts to reconnect a dropped Twisted receive
    # connection. txredisapi's own is 10 s: a daphne would then take up to 10 s to hear
    # from a Redis that has restarted, every socket's handshake waiting with it.
    reconnect_delay = 1.0

    def __init__(self, *, process_local_capacity: int = 10_000, receive_batch_size: int = 100, **kwargs: Any):
        if process_local_capacity < 1:
            raise ValueError("process_local_capacity must be at least 1")
        if receive_batch_size < 1:
            raise ValueError("receive_batch_size must be at least 1")
        self.process_local_capacity = process_local_capacity
        self.receive_batch_size = receive_batch_size
        super().__init__(**kwargs)
        self._waiting = _Waiting()
        self._full_lock = threading.Lock()
        self._full_counts: Counter[str] = Counter()
        self._twisted_shards: dict[int, Any] = {}

    def _generate_connections(self, hosts: list[str], redis_kwargs: dict) -> list:
        """One client per host, built from redis_urls for redis://, rediss:// and redis+sentinel://
        (asgi_redis would hand each URL to redis-py's from_url); unix:// URLs still go there, on
        the kit's short command path too.
        """
        self._redis_kwargs = dict(redis_kwargs)
        self._redis_urls: list[redis_urls.RedisURL | None] = []
        clients = []
        for host in hosts:
            if host.startswith(("redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://")):
                url = redis_urls.parse(host)
                self._redis_urls.append(url)
                clients.append(url.redis_client(**redis_kwargs))
            else:
                self._redis_urls.append(None)
                defaults = {"socket_timeout": None, "protocol": 2, "driver_info": None}
                pool = redis_client.ConnectionPool.from_url(host, **{**defaults, **redis_kwargs})
                clients.append(redis_client.Redis(connection_pool=pool))
        return clients

    def __str__(self) -> str:
        return f"{type(self).__name__}(hosts={[redis_urls.mask(host) for host in self.hosts]})"

    def _register_scripts(self) -> None:
        super()._register_scripts()
        connection = self.connection(0)
        self._deliver = connection.register_script(lua.DELIVER)
        self._send_group_script = connection.register_script(lua.SEND_GROUP)
        self._group_members = connection.register_script(lua.GROUP_MEMBERS)
        self._group_add = connection.register_script(lua.GROUP_ADD)
        self._take = connection.register_script(lua.TAKE)

    # Serialization: asgi_redis's calls msgpack 0.5's unpackb(encoding=), which msgpack 1.0 removed.

    def serialize(self, message: dict) -> bytes:
        body = pack(message)
        return self.crypter.encrypt(body) if self.crypter is not None else body

    def deserialize(self, message: bytes) -> dict:
        if self.crypter is not None:
            message = self.crypter.decrypt(message, self.expiry + 10)
        return unpack(message)

    # Groups: asgi_redis's group_add calls redis-py 2.10's zadd(name, **{member: score}).

    def group_add(self, group: str, channel: str) -> None:
        """Adds channel to group for group_expiry seconds, in one round trip (asgi_redis took two)."""
        assert self.valid_group_name(group), "Group name not valid"
        assert self.valid_channel_name(channel), "Channel name not valid"
        # One script on the kit's short path: a chat join and every liveblog connect add a member.
        connection = self.connection(self.consistent_hash(group))
        key = self._group_key(group)
        redis_client.script(connection, self._group_add, [key], [channel, time.time(), self.group_expiry])

    def get_capacity(self, channel: str) -> int:
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        if "!" in channel:
            return self.process_local_capacity
        return self.capacity

    # Sending

    def send(self, channel: str, message: dict) -> None:
        self.send_with_expiry(channel, message, self.expiry)

    def send_with_expiry(self, channel: str, message: dict, expiry: int) -> None:
        """send() of a message that expires unread after `expiry` seconds instead of the layer's.

        daphne's hardening sends each websocket.connect this way with its connect timeout: a
        handshake daphne has stopped waiting for is gone from Redis, and no worker accepts a page
        that was already refused (under a reconnect storm, that work was most of the workers')."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.valid_channel_name(channel), "Channel name not valid"
        # Reserved by asgi_redis; kept so that messages stay valid for it.
        assert "__asgi_channel__" not in message
        if not 1 <= expiry <= self.expiry:
            raise ValueError(f"expiry must be from 1 to the layer's expiry ({self.expiry}) seconds, not {expiry!r}")
        name = self.non_local_name(channel)
        index = self.consistent_hash(name) if self._single_reader(name) else next(self._send_index_generator)
        # A handshake's answer goes ahead of the daphne's fan-out backlog (see HANDSHAKE_LANE).
        lane = name + HANDSHAKE_LANE if "!" in name and message in HANDSHAKE_ANSWERS else name
        left_out = self._deliver_to(index, self.serialize(message), {lane: [channel[len(name) :]]}, expiry=expiry)
        if left_out:
            self._count_full(left_out)
            logger.warning("Channel %s is full (capacity %d): message not sent", name, self.get_capacity(name))
            raise self.ChannelFull(channel)

    def send_group(self, group: str, message: dict) -> None:
        """Sends message to every member of group whose channel has room; counts and logs the rest."""
        assert self.valid_group_name(group), "Group name not valid"
        body = self.serialize(message)
        cutoff = int(time.time()) - self.group_expiry
        if self.ring_size == 1 and not self.channel_capacity:
            message_id = uuid.uuid4().hex
            reply = redis_client.script(
                self.connection(0),
                self._send_group_script,
                [self.prefix + message_id, self._group_key(group)],
                [*self._push_header(message_id, body), cutoff, self.capacity, self.process_local_capacity],
            )
            left_out = [channel.decode("utf8") for channel in reply[1:]]
        else:
            left_out = []
            members = self._members(group, cutoff)
            for index, lists in self._plan(members).items():
                left_out += self._deliver_to(index, body, lists)
        if left_out:
            self._count_full(left_out)
            logger.warning(
                "Group %s: %d member channel(s) full, message not delivered to them: %s%s",
                group,
                len(left_out),
                ", ".join(left_out[:LOGGED_CHANNELS]),
                " ..." if len(left_out) > LOGGED_CHANNELS else "",
            )

    def group_channels(self, group: str) -> list[str]:
        return self._members(group, int(time.time()) - self.group_expiry)

    def _members(self, group: str, cutoff: int) -> list[str]:
        connection = self.connection(self.consistent_hash(group))
        members = redis_client.script(connection, self._group_members, [self._group_key(group)], [cutoff])
        return [member.decode("utf8") for member in members]

    def _plan(self, channels: Iterable[str]) -> dict[int, dict[str, list[str]]]:
        """Groups channels by shard, then by list: {shard: {non-local name: [local parts]}}."""
        plan: dict[int, dict[str, list[str]]] = {}
        # Any shard will do for channels every worker reads, so they all go to one, and
        # a group send touches no more shards than it must.
        shared_index = next(self._send_index_generator)
        for channel in channels:
            name = self.non_local_name(channel)
            index = self.consistent_hash(name) if self._single_reader(name) else shared_index
            plan.setdefault(index, {}).setdefault(name, []).append(channel[len(name) :])
        return plan

    def _deliver_to(
        self, index: int, body: bytes, lists: dict[str, list[str]], *, expiry: int | None = None
    ) -> list[str]:
        """Sends body to the given lists of one shard; returns the channels left out."""
        message_id = uuid.uuid4().hex
        args = self._push_header(message_id, body, expiry)
        for name, local_parts in lists.items():
            args += [name, self.get_capacity(name), len(local_parts), *local_parts]
        reply = redis_client.script(self.connection(index), self._deliver, [self.prefix + message_id], args)
        return [channel.decode("utf8") for channel in reply[1:]]

    def _push_header(self, message_id: str, body: bytes, expiry: int | None = None) -> list[Any]:
        """The arguments DELIVER and SEND_GROUP start with; see fanout_layer.lua."""
        return [
            message_id,
            body,
            self.expiry if expiry is None else expiry,
            self.prefix,
            self.stats_prefix,
            f"{self.stats_prefix}{self.global_stats_key}:",
            self.channel_statistics_expiry,
            self.global_statistics_expiry,
        ]

    def _count_full(self, channels: list[str]) -> None:
        with self._full_lock:
            self._full_counts.update(self.non_local_name(channel) for channel in channels)

    @property
    def channel_full_count(self) -> int:
        """How many messages this layer instance could not send because a channel was full."""
        with self._full_lock:
            return sum(self._full_counts.values())

    def channel_full_counts(self) -> dict[str, int]:
        """channel_full_count by (non-local) channel name."""
        with self._full_lock:
            return dict(self._full_counts)

    # Receiving

    def receive(self, channels: Iterable[str], block: bool = False) -> Received:
        channels = list(channels)
        waiting = self._waiting.pop(channels)
        if waiting is not None:
            return waiting
        plan = self._receive_plan(channels, block)
        reply = None
        try:
            while True:
                call = plan.send(reply)
                connection = self.connection(call.index)
                if isinstance(call, _Take):
                    reply = redis_client.script(connection, self._take, call.keys, call.args)
                else:
                    reply = redis_client.command(connection, "BLPOP", *call.keys, call.timeout)
        except StopIteration as done:
            return done.value

    def receive_twisted(self, channels: Iterable[str]):
        """Twisted receive: like receive(block=True), over one kept-open connection per shard.

        daphne calls this again as soon as it returns, so it must wait for a message
        rather than return at once when there is none.
        """
        channels = list(channels)
        # A fan-out puts hundreds of messages for one daphne in each batch: handing out the
        # rest of a batch must cost no more than a dictionary look-up (a generator of Redis
        # calls, an inlineCallbacks and a check of every channel name were about a third of
        # daphne's CPU per delivery).
        waiting = self._waiting.pop(channels)
        if waiting is not None:
            return defer.succeed(waiting)
        return self._receive_twisted_from_redis(channels)

    @defer.inlineCallbacks
    def _receive_twisted_from_redis(self, channels: list[str]):
        from twisted.internet import reactor, task

        plan = self._receive_plan(channels, block=True)
        reply = None
        while True:
            try:
                call = plan.send(reply)
            except StopIteration as done:
                return done.value
            shard = self._twisted_shard(call.index)
            connection = shard.connection
            if isinstance(call, _Take):
                pending, timeout = connection.eval(lua.TAKE, call.keys, call.args), self.reply_timeout
            else:
                pending = connection.blpop(call.keys, timeout=call.timeout)
                timeout = call.timeout + self.reply_timeout
            try:
                reply = yield shard.wait_for(pending, timeout)
            except defer.CancelledError:
                # An attempt to connect failed meanwhile, and said why (TwistedShard.failed).
                return NOTHING
            except defer.TimeoutError:
                if shard.failure is not None:
                    # Still failing, for the reason already logged; the connection keeps trying.
                    return NOTHING
                # A late reply would be taken for the answer to the next command, so the
                # connection goes and a new one is made on the next call.
                logger.warning("Redis shard %d did not answer within %ss: reconnecting", call.index, timeout)
                self._drop_twisted_connection(call.index)
                return NOTHING
            except txredisapi.ConnectionError as error:
                # The connection reconnects by itself and the next call waits for it;
                # daphne would wait five seconds after an exception instead.
                if shard.failure is None:
                    logger.warning("Lost the connection to Redis shard %d while receiving: %s", call.index, error)
                return NOTHING
            except txredisapi.ResponseError as error:
                if redis_urls.not_master(error):
                    # The master moved (Sentinel failover): a new connection asks the sentinels again.
                    logger.warning("Redis shard %d answered as a replica (%s): reconnecting", call.index, error)
                    self._drop_twisted_connection(call.index)
                    return NOTHING
                if not redis_urls.is_auth_refusal(error):
                    raise
                # NOAUTH (the URL has no password) or NOPERM (the ACL user lacks a right): said once,
                # then asked again every reconnect_delay rather than in a tight loop.
                shard.failed(redis_urls.refusal(error))
                yield task.deferLater(reactor, self.reconnect_delay, lambda: None)
                return NOTHING
            shard.succeeded()

    def _receive_plan(self, channels: Iterable[str], block: bool) -> Generator[_Take | _Wait, Any, Received]:
        """How to receive, as the Redis calls to make: yields each call, is sent its reply.

        receive() and receive_twisted() only differ in how they make the calls.
        """
        shards, waiting_shards = self._receive_shards(channels)
        if not shards:
            return NOTHING
        while True:
            for index, keys in shards.items():
                reply = yield _Take(index, keys, self._take_args(keys))
                received = self._keep(keys, reply)
                if received is not None:
                    return received
            if not block:
                return NOTHING
            popped_expired = False
            # Redis can only wait on one server at a time: with several to wait on, wait
            # on each in turn for a shorter while.
            timeout = self.blpop_timeout if len(waiting_shards) == 1 else 1
            for index in waiting_shards:
                keys = shards[index]
                popped = yield _Wait(index, keys, timeout)
                if popped:
                    key, entry = (part.decode("utf8") if isinstance(part, bytes) else part for part in popped)
                    reply = yield _Take(index, keys, self._take_args(keys, (keys.index(key) + 1, entry)))
                    received = self._keep(keys, reply)
                    if received is not None:
                        return received
                    popped_expired = True
            if not popped_expired:
                return NOTHING

    def _receive_shards(self, channels: Iterable[str]) -> tuple[dict[int, list[str]], list[int]]:
        """The lists to take from on each shard, and the shards to wait on if all are empty.

        A message for an ordinary channel may be on any shard, so all of them are asked
        before waiting, starting with the next in turn; asgi_redis asks only that one and
        then waits on it while the others may hold messages. Waiting is on every shard for
        ordinary channels, in turn, and on those of the process-local and single-reader
        channels: a worker that waited on one shard alone would leave a message sent to
        another waiting for the whole blpop_timeout (5 s), longer than daphne gives a
        WebSocket handshake. With several shards, an idle worker hears of a message within
        about a second.
        """
        channels = list(channels)
        assert all(self.valid_channel_name(channel, receive=True) for channel in channels), "Channel name not valid"
        ordinary = [self.prefix + channel for channel in channels if not self._single_reader(channel)]
        first = next(self._receive_index_generator)
        shards: dict[int, list[str]] = {}
        if ordinary:
            for index in [first, *(index for index in range(self.ring_size) if index != first)]:
                shards[index] = list(ordinary)
        single_reader_shards = set()
        for channel in channels:
            if self._single_reader(channel):
                index = self.consistent_hash(channel)
                shards.setdefault(index, []).append(self.prefix + channel)
                single_reader_shards.add(index)
        for keys in shards.values():
            # No channel of the lot keeps the others waiting, but the handshake lanes go first.
            random.shuffle(keys)
            keys[:0] = [key + HANDSHAKE_LANE for key in keys if key.endswith("!")]
        waiting_shards = [index for index in shards if ordinary or index in single_reader_shards]
        return shards, waiting_shards

    def _take_args(self, keys: list[str], popped: tuple[int, str] | None = None) -> list[Any]:
        shared = ["0" if self._single_reader(key[len(self.prefix) :]) else "1" for key in keys]
        return [self.prefix, self.receive_batch_size, *shared, *(popped or ())]

    def _keep(self, keys: list[str], reply: list[Any]) -> Received | None:
        """Unpacks a TAKE reply: returns its first message and keeps the rest waiting."""
        body_count = reply[0]
        bodies = _Bodies([self._decrypt(body) for body in reply[1 : 1 + body_count]])
        items = reply[1 + body_count :]
        received: list[tuple[str, str, dict]] = []
        for position in range(0, len(items), 3):
            list_number, local_part, body_number = items[position : position + 3]
            message = bodies.message(body_number - 1)
            if message is not None:
                name = keys[list_number - 1][len(self.prefix) :].removesuffix(HANDSHAKE_LANE)
                received.append((name, name + local_part.decode("utf8"), message))
        if not received:
            return None
        for name, channel, message in received[1:]:
            self._waiting.put(name, channel, message)
        _, channel, message = received[0]
        return channel, message

    def _decrypt(self, body: bytes) -> bytes | None:
        """Decrypts a body once for all its recipients in a batch; None if it cannot be."""
        if self.crypter is None:
            return body
        from cryptography.fernet import InvalidToken

        try:
            return self.crypter.decrypt(body, self.expiry + 10)
        except InvalidToken:
            # One unreadable message must not cost the rest of the batch.
            logger.error("Dropped a message that none of the symmetric_encryption_keys decrypts")
            return None

    def _twisted_shard(self, index: int):
        """The shard's long-lived txredisapi connection, made on first use; it reconnects by itself."""
        shard = self._twisted_shards.get(index)
        if shard is None:
            if txredisapi is None:
                raise RuntimeError("receive_twisted needs txredisapi")
            url = self._redis_urls[index]
            if url is None:
                raise ValueError(f"receive_twisted needs Redis over TCP, not {redis_urls.mask(self.hosts[index])}")
            from .twisted_redis import TwistedShard

            connect_timeout = url.socket_connect_timeout or self._redis_kwargs.get("socket_connect_timeout")
            shard = TwistedShard(index, url, reconnect_delay=self.reconnect_delay, connect_timeout=connect_timeout)
            self._twisted_shards[index] = shard
        return shard

    def _drop_twisted_connection(self, index: int) -> None:
        shard = self._twisted_shards.pop(index, None)
        if shard is not None:
            shard.disconnect().addErrback(
                lambda failure: logger.warning("Redis shard %d: %s", index, failure.getErrorMessage())
            )

    def disconnect_twisted(self):
        """Closes the Twisted receive connections; returns a Deferred that fires once they are."""
        shards = list(self._twisted_shards.values())
        self._twisted_shards.clear()
        return defer.gatherResults([shard.disconnect() for shard in shards])

    # Flush and statistics

    def flush(self) -> None:
        super().flush()
        self._waiting.clear()

    def _count_channel_stats(self, channel: str, connections: list) -> dict[str, int]:
        # asgi_redis takes the age of the oldest message from the TTL of the key its list
        # holds; here the list holds entries that point at the body's key.
        statistics = {
            self.STAT_MESSAGES_COUNT: 0,
            self.STAT_MESSAGES_PENDING: 0,
            self.STAT_MESSAGES_MAX_AGE: 0,
            self.STAT_CHANNEL_FULL: 0,
        }
        stats_key = self.stats_prefix + channel
        list_key = self.prefix + channel
        for connection in connections:
            # One MULTI: a send between separate reads of the count and the list would make
            # the two disagree, and a rate taken from two such readings (channel_report's
            # consumed_per_second) count a message consumed that never was.
            reading = connection.pipeline(transaction=True)
            reading.mget(f"{stats_key}:{self.STAT_MESSAGES_COUNT}", f"{stats_key}:{self.STAT_CHANNEL_FULL}")
            reading.llen(list_key)
            reading.lindex(list_key, 0)
            (messages, full), pending, oldest = reading.execute()
            statistics[self.STAT_MESSAGES_COUNT] += int(messages or 0)
            statistics[self.STAT_CHANNEL_FULL] += int(full or 0)
            statistics[self.STAT_MESSAGES_PENDING] += pending
            if oldest:
                ttl = connection.ttl(self.prefix + oldest.decode("utf8").partition("|")[0])
                # redis-py 3+ answers -2 for a key gone (expired meanwhile) and -1 for one without
                # expiry, where 2.10.6 answered None.
                if ttl is not None and ttl >= 0:
                    age = self.expiry - ttl
                    statistics[self.STAT_MESSAGES_MAX_AGE] = max(statistics[self.STAT_MESSAGES_MAX_AGE], age)
        return statistics

    # Helpers

    @staticmethod
    def _single_reader(name: str) -> bool:
        """Whether only one process reads the channel: process-local and single-reader ones."""
        return "!" in name or "?" in name
