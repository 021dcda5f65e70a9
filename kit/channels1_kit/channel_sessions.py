"""Channel sessions kept in the channel layer's Redis: `CHANNEL_SESSION_ENGINE = "channels1_kit.channel_sessions"`.

Channels 1 keeps a channel session per socket (`@channel_session`, `enforce_ordering`,
`channel_session_user`) in Django's SESSION_ENGINE, the database by default. Every frame of
a socket then reads its session, checks that it exists and writes it back (enforce_ordering
changes it on every frame): two reads and a committed write per frame, which on SQLite is an
fsync, before the consumer does anything of its own.

This engine keeps them where the socket's other runtime state already is: in the layer's
Redis, beside its channels and groups (on the shard `consistent_hash` picks for the key),
under `<layer prefix>:session:<key>`. A Redis that restarts empty loses them with the groups,
and daphne closes every socket then (4503), so no socket outlives its session. Only channel
sessions: HTTP sessions stay in SESSION_ENGINE.

A socket's session is of no use once the socket is gone, and every page view opens a socket:
kept for SESSION_COOKIE_AGE (two weeks), they would fill Redis. So each one expires
CHANNELS1_KIT_CHANNEL_SESSION_SECONDS (minutes) after it was last written, and lives as long
as its socket because each daphne's heartbeat renews the sessions of the sockets it lists
(refresh(), from channels1_kit/sockets.py). A socket's websocket.disconnect deletes it
(channels1_kit/gone.py), and the sweep deletes those of a dead daphne's sockets; one whose
disconnect never came expires within those minutes.

With a layer that has no Redis (the in-memory layer of tests), they live in this process,
as that layer's messages do.
"""

import hashlib
import json
import logging
import threading
import time
from importlib import import_module
from typing import Any, Dict, Iterable, Optional, Tuple

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from channels1_kit import redis_client
from channels1_kit.conf import channel_layer, setting

logger = logging.getLogger(__name__)

# For a layer without Redis: {key: (expires at, encoded session)}.
_in_process: Dict[str, Tuple[float, str]] = {}
_in_process_lock = threading.Lock()


def redis_key(layer, session_key: str) -> str:
    return f"{layer.prefix}:session:{session_key}"


class SessionStore(SessionBase):
    def _where(self, session_key: str) -> Tuple[Optional[Any], str]:
        """The Redis client of the shard holding session_key (None without Redis), and its key."""
        layer = channel_layer()
        if not hasattr(layer, "connection"):
            return None, session_key
        return layer.connection(layer.consistent_hash(session_key)), redis_key(layer, session_key)

    def load(self) -> dict:
        self._just_read = None
        if self.session_key is not None:
            raw = self._read(self.session_key)
            self._just_read = (self.session_key, raw is not None)
            if raw is not None:
                return self.decode(raw)
        self._session_key = None
        return {}

    # Plain JSON, not Django's signed and compressed form: a channel session never leaves the
    # layer's Redis, where whoever can write can already send any socket anything; the signature
    # and zlib were a tenth of a chat worker's time for each frame of a socket.
    def encode(self, session_dict: dict) -> str:
        return json.dumps(session_dict, separators=(",", ":"))

    def decode(self, session_data: str) -> dict:
        if session_data.startswith("{"):
            try:
                return json.loads(session_data)
            except ValueError:
                return {}
        # Signed by a release before this one (or by Django's own engines): read as they were.
        return super().decode(session_data)

    def exists(self, session_key: Optional[str]) -> bool:
        # channels 1.1.8 loads a frame's session, then asks once whether it exists: the load's
        # answer, found or not, without a second GET per frame (a new socket's first frame asked
        # twice). What changes between the two, save() finds out as it would after any read: a
        # session deleted meanwhile is not written back (SET XX), and one another worker created
        # meanwhile fails this one's create (SET NX), which channels retries with that session.
        just_read, self._just_read = getattr(self, "_just_read", None), None
        if session_key is not None and just_read is not None and just_read[0] == session_key:
            return just_read[1]
        return session_key is not None and self._read(session_key) is not None

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue  # a key someone already has: draw another
            self.modified = True
            return

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        self._just_read = None
        session = self._get_session(no_load=must_create)
        data = self.encode(session)
        # Not SESSION_COOKIE_AGE: a socket's session lives as long as the socket (its daphne
        # renews it) and a few minutes more; unless whoever made it set an expiry of its own.
        expiry = self.get_expiry_age() if "_session_expiry" in session else setting("CHANNEL_SESSION_SECONDS")
        seconds = max(int(expiry), 1)
        redis, key = self._where(self.session_key)
        if redis is not None:
            # SET NX for a new session, so that two workers creating the same one cannot both
            # succeed (channels then retries the message: ConsumeLater); SET XX for an
            # existing one, so that a session deleted meanwhile is not brought back.
            # redis_client.command: a frame's session read and write are on the worker's hot path.
            reply = redis_client.command(redis, "SET", key, data, "EX", seconds, "NX" if must_create else "XX")
            written = reply is not None
        else:
            with _in_process_lock:
                current = _in_process.get(key)
                live = current is not None and current[0] > time.time()
                written = live != must_create
                if written:
                    _in_process[key] = (time.time() + seconds, data)
        if not written:
            raise CreateError if must_create else UpdateError

    def delete(self, session_key: Optional[str] = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._just_read = None
        redis, key = self._where(session_key)
        if redis is not None:
            redis_client.command(redis, "DEL", key)
        else:
            with _in_process_lock:
                _in_process.pop(key, None)

    def _read(self, session_key: str) -> Optional[str]:
        redis, key = self._where(session_key)
        if redis is not None:
            raw = redis_client.command(redis, "GET", key)
            return raw.decode("utf8") if raw is not None else None
        with _in_process_lock:
            current = _in_process.get(key)
        if current is None or current[0] <= time.time():
            return None
        return current[1]

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires each key itself (and the in-process store on reading)."""


def session_key_for(reply_channel: str) -> str:
    """The session key channels 1.1.8 gives a socket's channel session: see
    channels.sessions.session_for_reply_channel, which only hands out a loaded store."""
    return "chn" + hashlib.sha1(reply_channel.encode("utf8")).hexdigest()[:29]


def engine_in_use() -> bool:
    """Whether the site keeps its channel sessions here (CHANNEL_SESSION_ENGINE)."""
    return getattr(settings, "CHANNEL_SESSION_ENGINE", settings.SESSION_ENGINE) == __name__


def forget(reply_channels: Iterable[str]) -> int:
    """Deletes the channel sessions of these sockets, in whatever CHANNEL_SESSION_ENGINE keeps
    them (database sessions too); returns how many sockets it was asked about."""
    engine = import_module(getattr(settings, "CHANNEL_SESSION_ENGINE", settings.SESSION_ENGINE))
    count = 0
    for reply_channel in reply_channels:
        engine.SessionStore().delete(session_key_for(reply_channel))
        count += 1
    return count


# EXPIRE of every key given, in one command: a daphne with 10,000 sockets renews them all in
# about 15 ms of Redis time, where a pipeline of EXPIREs costs redis-py 2.10 four times that.
_RENEW = """
local renewed = 0
for _, key in ipairs(KEYS) do
    renewed = renewed + redis.call('EXPIRE', key, ARGV[1])
end
return renewed
"""
RENEW_SLICE = 2000
# When each daphne of this process last renewed its sockets' sessions (one daphne per process).
_renewed_at: Dict[str, float] = {}


def refresh(layer, daphne: str, reply_channels: Iterable[str], *, now: float) -> Optional[int]:
    """Renews the channel sessions of a daphne's open sockets, if a third of their expiry has
    passed since it last did; returns how many existed, or None if none was due.

    EXPIRE only: a session deleted meanwhile (its disconnect ran) stays deleted, and a socket
    whose connect no worker has handled yet gets none.
    """
    seconds = max(int(setting("CHANNEL_SESSION_SECONDS")), 1)
    if not engine_in_use() or not hasattr(layer, "connection") or now - _renewed_at.get(daphne, 0) < seconds / 3:
        return None
    by_shard: Dict[int, list] = {}
    for reply_channel in reply_channels:
        session_key = session_key_for(reply_channel)
        by_shard.setdefault(layer.consistent_hash(session_key), []).append(redis_key(layer, session_key))
    renewed = 0
    for index, keys in by_shard.items():
        renew = layer.connection(index).register_script(_RENEW)
        # A few thousand at a time: Redis serves no one else while a script runs.
        for first in range(0, len(keys), RENEW_SLICE):
            renewed += renew(keys=keys[first : first + RENEW_SLICE], args=[seconds])
    _renewed_at[daphne] = now
    return renewed
