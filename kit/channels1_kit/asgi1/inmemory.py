"""An in-process ASGI 1 channel layer, for tests: what channels.test's ChannelTestCase swaps in.

channels.test.base imports ``asgiref.inmemory.ChannelLayer``; runworker refuses a layer whose
module name contains "inmemory" (channels.asgi.ChannelLayerWrapper.local_only), so this
module's name keeps that word. Messages live in this process only; ``receive`` never waits.
"""

import copy
import random
import string
import threading
import time
from collections import deque

from .base_layer import BaseChannelLayer

_SUFFIX_CHARS = string.ascii_letters + string.digits


class ChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(self, expiry=60, group_expiry=86400, capacity=10, channel_capacity=None):
        super().__init__(expiry=expiry, group_expiry=group_expiry, capacity=capacity, channel_capacity=channel_capacity)
        self._lock = threading.RLock()
        # Receiving name ("a" or, for process-local channels, "a!") -> deque of
        # (expires at, full channel name, message).
        self._queues: dict[str, deque] = {}
        # Group -> {channel: time added}.
        self._groups: dict[str, dict[str, float]] = {}

    def send(self, channel, message):
        assert isinstance(message, dict), "an ASGI message is a dict"
        self.valid_channel_name(channel)
        key = self.non_local_name(channel)
        with self._lock:
            self._expire()
            queue = self._queues.setdefault(key, deque())
            if len(queue) >= self.get_capacity(channel):
                raise self.ChannelFull(channel)
            # A copy: the sender may go on changing its dict.
            queue.append((time.time() + self.expiry, channel, copy.deepcopy(message)))

    def receive(self, channels, block=False):
        channels = list(channels)
        if not channels:
            # As asgiref 1's in-memory layer and asgi_redis answer: nothing to receive.
            return None, None
        self.valid_channel_names(channels, receive=True)
        # No channel is always served first.
        keys = random.sample(channels, len(channels))
        with self._lock:
            self._expire()
            for key in keys:
                queue = self._queues.get(key)
                if queue:
                    _, channel, message = queue.popleft()
                    return channel, message
        return None, None

    def new_channel(self, pattern):
        assert isinstance(pattern, str) and pattern.endswith(("?", "!")), "a pattern ends with '?' or '!'"
        with self._lock:
            while True:
                name = pattern + "".join(random.choices(_SUFFIX_CHARS, k=12))
                self.valid_channel_name(name)
                if self.non_local_name(name) not in self._queues or pattern.endswith("!"):
                    return name

    def group_add(self, group, channel):
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        with self._lock:
            self._groups.setdefault(group, {})[channel] = time.time()

    def group_discard(self, group, channel):
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        with self._lock:
            members = self._groups.get(group, {})
            members.pop(channel, None)
            if not members:
                self._groups.pop(group, None)

    def group_channels(self, group):
        self.valid_group_name(group)
        with self._lock:
            self._expire()
            return list(self._groups.get(group, {}))

    def send_group(self, group, message):
        self.valid_group_name(group)
        for channel in self.group_channels(group):
            try:
                self.send(channel, message)
            except self.ChannelFull:
                # ASGI 1: a full member misses the message; the others still get it.
                pass

    def flush(self):
        with self._lock:
            self._queues.clear()
            self._groups.clear()

    def _expire(self):
        """Drops expired messages and memberships; a channel that let a message expire leaves its groups
        (ASGI 1: nobody is reading it)."""
        now = time.time()
        abandoned = set()
        for key, queue in list(self._queues.items()):
            while queue and queue[0][0] <= now:
                abandoned.add(queue.popleft()[1])
            if not queue:
                del self._queues[key]
        for group, members in list(self._groups.items()):
            for channel, added in list(members.items()):
                if channel in abandoned or added <= now - self.group_expiry:
                    del members[channel]
            if not members:
                del self._groups[group]


# channels 1.0 imported a ready-made instance by this name.
channel_layer = ChannelLayer()
