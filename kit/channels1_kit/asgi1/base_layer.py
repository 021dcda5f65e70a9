"""BaseChannelLayer: the ASGI 1 channel-layer interface, name rules and capacity lookup.

asgi_redis's RedisChannelLayer subclasses it (``from asgiref.base_layer import
BaseChannelLayer``) and calls its name checks and ``get_capacity``; the behaviour here follows
the ASGI 1 specification:

* a channel name is ASCII letters, digits, ``-``, ``_`` and ``.``, optionally followed by
  ``?`` (single-reader) or ``!`` (process-local) and a suffix of the same characters, 100
  characters in all at most (the specification asks layers to take names of at least 100
  bytes); a group name has no ``?`` or ``!`` part;
* names that are not text, or break the rules, are refused with TypeError;
* a process-local channel is received by its prefix up to and including the ``!``.
"""

import fnmatch
import re
import warnings
from collections.abc import Iterable, Mapping
from re import Pattern

# Shared by channel and group names: what an ASGI 1 name may be made of.
_NAME_CHARS = r"[a-zA-Z0-9\-_.]"
MAX_NAME_LENGTH = 100


class BaseChannelLayer:
    """The interface every ASGI 1 layer offers, with the parts that do not depend on storage."""

    extensions: list = []

    class ChannelFull(Exception):
        """The channel holds as many messages as its capacity allows."""

    class MessageTooLarge(Exception):
        """The message is larger than the layer can carry."""

    # \Z, not $: "$" also matches before a final newline, which no name may contain.
    channel_name_regex = re.compile(rf"^{_NAME_CHARS}+([?!]{_NAME_CHARS}*)?\Z")
    group_name_regex = re.compile(rf"^{_NAME_CHARS}+\Z")

    def __init__(self, expiry=60, group_expiry=86400, capacity=100, channel_capacity=None):
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.capacity = capacity
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    # The core API, for subclasses to provide.

    def send(self, channel, message):
        raise NotImplementedError

    def receive(self, channels, block=False):
        raise NotImplementedError

    def receive_many(self, channels, block=False):
        # The ASGI 1.0 name of receive; channels 1.0 sites still call it.
        warnings.warn("receive_many() is deprecated, use receive()", DeprecationWarning, stacklevel=2)
        return self.receive(channels, block)

    def new_channel(self, pattern):
        raise NotImplementedError

    # The "groups" and "flush" extensions.

    def group_add(self, group, channel):
        raise NotImplementedError

    def group_discard(self, group, channel):
        raise NotImplementedError

    def group_channels(self, group):
        raise NotImplementedError

    def send_group(self, group, message):
        raise NotImplementedError

    def flush(self):
        raise NotImplementedError

    # Capacity: a default, overridden per channel by glob patterns (or compiled regexes).

    def compile_capacities(self, channel_capacity: Mapping) -> list[tuple[Pattern, int]]:
        """[(regex, capacity)] in the mapping's order; a string key is a glob such as "http.*"."""
        compiled = []
        for pattern, capacity in channel_capacity.items():
            if not hasattr(pattern, "match"):
                pattern = re.compile(fnmatch.translate(pattern))
            compiled.append((pattern, capacity))
        return compiled

    def get_capacity(self, channel: str) -> int:
        """The first matching pattern's capacity, else the layer's default."""
        return next((capacity for pattern, capacity in self.channel_capacity if pattern.match(channel)), self.capacity)

    # Names.

    def match_type_and_length(self, name) -> bool:
        return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH

    def valid_channel_name(self, name, receive=False) -> bool:
        if not (self.match_type_and_length(name) and self.channel_name_regex.match(name)):
            raise TypeError(f"Invalid channel name {name!r}: text of ASCII letters, digits, '-', '_' or '.'.")
        if name.endswith("?"):
            raise TypeError(f"Invalid channel name {name!r}: a single-reader name needs a suffix after '?'.")
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(f"Invalid channel name {name!r}: receive a process-local channel by its prefix 'x!'.")
        return True

    def valid_group_name(self, name) -> bool:
        if not (self.match_type_and_length(name) and self.group_name_regex.match(name)):
            raise TypeError(f"Invalid group name {name!r}: text of ASCII letters, digits, '-', '_' or '.'.")
        return True

    def valid_channel_names(self, names: Iterable, receive=False) -> bool:
        assert isinstance(names, list) and names, "channel names must be a non-empty list"
        return all(self.valid_channel_name(name, receive=receive) for name in names)

    def non_local_name(self, name: str) -> str:
        """The part a process-local name is received by ("a!" for "a!b"); other names whole."""
        prefix, bang, _ = name.partition("!")
        return prefix + bang
