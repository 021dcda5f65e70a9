"""redis-py's client and pool with the per-command path of redis-py 2.10.6: what the kit's Redis calls go through.

redis-py 8's own client spends about twice the CPU of 2.10.6 on a GET (27-32 µs against 15-17 in
``python -m bench.redis_commands``): its pool polls the socket of every connection it hands out,
and each command passes through a retry policy with backoff, an event dispatcher and
observability hooks that record nothing unless configured. The fan-out layer sends every
WebSocket frame and every reply through Redis, so that is CPU per echo and per delivery.

Here a command is what it was in 2.10.6: take a connection from the pool, send, read the reply
with redis-py's own parser (hiredis when installed) and response callbacks, put it back; on a
ConnectionError, once more on a new connection (the Sentinel pools rely on that retry to ask the
sentinels again). Everything else is redis-py's: connecting, TLS, AUTH, SELECT, the parsers,
pipelines, scripts, every command's arguments and replies.

The fan-out layer's own calls (its scripts and BLPOP, several per WebSocket frame) and a frame's
channel session go one step
further with ``command()`` and ``script()``: the arguments are packed by hiredis in one call
(redis-py's packer encodes each argument in Python first: 21 µs for a DELIVER's sixteen, 2 µs
here) and the reply is returned as Redis sent it, without redis-py's response callbacks.

What the pool no longer does, the kit does where it matters: a connection is disconnected
whenever a command on it is interrupted between sending and reading (so no reply is left unread
on a connection back in the pool, which redis-py's poll would otherwise have found).
"""

from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, DataError, NoScriptError, RedisError, TimeoutError
from redis.retry import Retry

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # Then redis-py packs, as for every other command.
    _hiredis_pack = None


def retry_once() -> Retry:
    """The connections' retry policy: once more on a ConnectionError, at once, as redis-py 2.10.6 did.

    Used by what still goes through redis-py's own code (pipelines, connect()); Redis.execute_command
    below retries the same way itself.
    """
    return Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))


class ConnectionPool(redis.ConnectionPool):
    """redis-py's pool, handing out and taking back connections as 2.10.6's did: under the lock, nothing more.

    Connections connect on their first command (redis-py's send_packed_command does it); a broken
    one is disconnected by whoever broke it, and connects again on its next command.
    """

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any):
        self._checkpid()
        with self._lock:
            try:
                connection = self._available_connections.pop()
            except IndexError:
                connection = self.make_connection()
            self._in_use_connections.add(connection)
        return connection

    def release(self, connection) -> None:
        self._checkpid()
        with self._lock:
            try:
                self._in_use_connections.remove(connection)
            except KeyError:
                return  # Not one of this pool's (a pool reset after a fork).
            self._available_connections.append(connection)

    def __repr__(self) -> str:
        # redis-py's lists every connection keyword argument (the password redacted): the URL says it shorter.
        url = self.connection_kwargs.get("redis_url")
        shown = (
            url.masked
            if url is not None
            else "{}:{}".format(self.connection_kwargs.get("host"), self.connection_kwargs.get("port"))
        )
        return f"<{type(self).__name__}({shown})>"


def _on_a_pooled_connection(pool: redis.ConnectionPool, request: Callable[[Any], Any]) -> Any:
    """request(connection) on a connection of pool, the 2.10.6 way: once more on a new connection
    after a ConnectionError (or a TimeoutError, where the connection retries on timeouts), and
    the connection disconnected if interrupted between sending and reading (the reply would be
    the next command's)."""
    connection = pool.get_connection()
    try:
        try:
            return request(connection)
        except (ConnectionError, TimeoutError) as error:
            connection.disconnect()
            if isinstance(error, TimeoutError) and not connection.retry_on_timeout:
                raise
            return request(connection)
    except BaseException as error:
        if not isinstance(error, RedisError):
            connection.disconnect()
        raise
    finally:
        pool.release(connection)


class Redis(redis.Redis):
    """redis.Redis whose commands take the short path (see the module's first lines)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.connection is not None:
            return super().execute_command(*args, **options)  # A single-connection client: redis-py's path.

        def request(connection):
            connection.send_command(*args, check_health=False)
            return self.parse_response(connection, args[0], **options)

        return _on_a_pooled_connection(self.connection_pool, request)


def command(client: redis.Redis, *args: Any) -> Any:
    """Redis's reply to one command on client's pool, as it came (no response callback).

    Arguments are str, bytes, int or float. The same path as Redis.execute_command otherwise.
    """
    if _hiredis_pack is not None:
        try:
            packed = [_hiredis_pack(args)]
        except TypeError as error:
            raise DataError(f"{args[0]}: {error}") from None
    else:
        packed = None

    def request(connection):
        connection.send_packed_command(packed or connection.pack_command(*args), check_health=False)
        return connection.read_response()

    return _on_a_pooled_connection(client.connection_pool, request)


def script(client: redis.Redis, lua: Any, keys: list, args: list) -> Any:
    """Runs a registered script (redis-py's Script, for its source and SHA1) by command():
    EVALSHA, and SCRIPT LOAD first where Redis does not know it (a restart), as Script does."""
    try:
        return command(client, "EVALSHA", lua.sha, len(keys), *keys, *args)
    except NoScriptError:
        command(client, "SCRIPT", "LOAD", lua.script)
        return command(client, "EVALSHA", lua.sha, len(keys), *keys, *args)
