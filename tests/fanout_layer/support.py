"""Helpers for the fan-out layer's tests: prefixes, a reactor thread, counting Redis calls."""

import json
import queue
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import redis
from redis.connection import Connection

from fanout_layer import FanoutRedisChannelLayer, lua
from tests.support.prerequisites import require
from tools.processes import REPO, RedisServer

# The most any single reactor call in these tests may take; receive_twisted waits up to
# the layer's blpop_timeout for a message.
REACTOR_CALL_TIMEOUT = 20.0


def unique_prefixes() -> dict[str, str]:
    """A key prefix and statistics prefix no other layer in the test run uses."""
    tag = uuid.uuid4().hex[:10]
    return {"prefix": f"t{tag}:", "stats_prefix": f"t{tag}-meta:"}


class Reactor:
    """Runs calls on the real Twisted reactor, which runs in a thread of the test process."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def call(self, function: Callable, *args: Any, timeout: float = REACTOR_CALL_TIMEOUT) -> Any:
        """Calls function in the reactor thread and returns what its Deferred fires with."""
        from twisted.internet import defer

        outcome: queue.Queue = queue.Queue()
        self.reactor.callFromThread(lambda: defer.maybeDeferred(function, *args).addBoth(outcome.put))
        try:
            result = outcome.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{function} did not finish within {timeout}s")
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result


def raw_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


@contextmanager
def round_trips() -> Iterator[Counter]:
    """Counts the requests redis-py sends, by server port: one per command, or per pipeline."""
    counts: Counter = Counter()
    send = Connection.send_packed_command

    def counting_send(connection: Connection, command: Any, *args: Any, **kwargs: Any) -> None:
        counts[connection.port] += 1
        send(connection, command, *args, **kwargs)

    with mock.patch.object(Connection, "send_packed_command", counting_send):
        yield counts


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, commands run by scripts included."""
    return {name[len("cmdstat_") :]: stats["calls"] for name, stats in client.info("commandstats").items()}


def drain(layer: FanoutRedisChannelLayer, channels: list[str], limit: int = 100_000) -> list[tuple[str, dict]]:
    """Everything receive() hands out for channels until it hands out nothing."""
    received = []
    for _ in range(limit):
        channel, message = layer.receive(channels)
        if channel is None:
            return received
        received.append((channel, message))
    raise AssertionError(f"still receiving after {limit} messages")


def lane_reader_key(layer, daphne: str) -> bytes:
    """The mark a daphne's receive keeps that it reads its handshake lane (fanout_layer.lua)."""
    return f"{layer.prefix}{daphne}{lua.LANE_SUFFIX}{lua.READER_SUFFIX}".encode()


# What the layer fixes is shown beside stock asgi_redis, which runs only on the redis-py 2.10 and
# msgpack-python 0.5 it was written for: in .venv-stock (requirements/stock.txt), made by make test.
STOCK_PYTHON = REPO / ".venv-stock" / "bin" / "python"
STOCK_PROBE = Path(__file__).with_name("stock_probe.py")


def stock(scenario: str, server: RedisServer) -> dict:
    """What stock asgi_redis did in one of stock_probe.py's scenarios against this Redis."""
    require(STOCK_PYTHON.exists(), f"no {STOCK_PYTHON} for stock asgi_redis (make .venv-stock/.installed)")
    prefix = unique_prefixes()["prefix"]
    result = subprocess.run(
        [str(STOCK_PYTHON), str(STOCK_PROBE), scenario, server.url, prefix],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stock_probe.py {scenario} failed:\n{result.stderr}"
    return json.loads(result.stdout.splitlines()[-1])
