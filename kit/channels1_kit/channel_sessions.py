"""Channel sessions kept in the channel layer's Redis: `CHANNEL_SESSION_ENGINE = "channels1_kit.channel_sessions"`.

Channels 1 keeps a channel session per socket (`@channel_session`, `enforce_ordering`,
`channel_session_user`) in Django's SESSION_ENGINE, the database by default. Every frame of
a socket then reads its session, checks that it exists and writes it back (enforce_ordering
changes it on every frame): two reads and a committed write per frame, which on SQLite is an
fsync, before the consumer does anything of its own.

This engine keeps them where the socket's other runtime state already is: in the layer's
Redis, beside its channels and groups (on the shard `consistent_hash` picks for the key),
under `<layer prefix>:session:<key>`, expiring with the session's expiry age. A Redis that
restarts empty loses them with the groups, and daphne closes every socket then (4503), so no
socket outlives its session. Only channel sessions: HTTP sessions stay in SESSION_ENGINE.

With a layer that has no Redis (the in-memory layer of tests), they live in this process,
as that layer's messages do.
"""

import threading
import time
from typing import Any, Dict, Optional, Tuple

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from channels1_kit.conf import channel_layer

# For a layer without Redis: {key: (expires at, encoded session)}.
_in_process: Dict[str, Tuple[float, str]] = {}
_in_process_lock = threading.Lock()


class SessionStore(SessionBase):
    def _where(self, session_key: str) -> Tuple[Optional[Any], str]:
        """The Redis client of the shard holding session_key (None without Redis), and its key."""
        layer = channel_layer()
        if not hasattr(layer, "connection"):
            return None, session_key
        return layer.connection(layer.consistent_hash(session_key)), f"{layer.prefix}:session:{session_key}"

    def load(self) -> dict:
        if self.session_key is not None:
            raw = self._read(self.session_key)
            if raw is not None:
                return self.decode(raw)
        self._session_key = None
        return {}

    def exists(self, session_key: Optional[str]) -> bool:
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
        data = self.encode(self._get_session(no_load=must_create))
        seconds = max(int(self.get_expiry_age()), 1)
        redis, key = self._where(self.session_key)
        if redis is not None:
            # SET NX for a new session, so that two workers creating the same one cannot both
            # succeed (channels then retries the message: ConsumeLater); SET XX for an
            # existing one, so that a session deleted meanwhile is not brought back.
            written = redis.set(key, data, ex=seconds, nx=must_create, xx=not must_create)
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
        redis, key = self._where(session_key)
        if redis is not None:
            redis.delete(key)
        else:
            with _in_process_lock:
                _in_process.pop(key, None)

    def _read(self, session_key: str) -> Optional[str]:
        redis, key = self._where(session_key)
        if redis is not None:
            raw = redis.get(key)
            return raw.decode("utf8") if raw is not None else None
        with _in_process_lock:
            current = _in_process.get(key)
        if current is None or current[0] <= time.time():
            return None
        return current[1]

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires each key itself (and the in-process store on reading)."""
