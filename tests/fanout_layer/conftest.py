"""Fixtures for the fan-out channel layer: real redis-servers, layers on them, a real reactor.

Tests share the session's Redis servers, each with a prefix (and statistics prefix) of its
own, so they neither see nor count each other's keys. Tests that count connections or
commands server-wide get a Redis of their own.
"""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import unique_prefixes
from tools.processes import RedisServer


@pytest.fixture(scope="session")
def redis_log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fanout-redis")


@pytest.fixture(scope="session")
def redis_one(redis_log_dir) -> Iterator[RedisServer]:
    with RedisServer(redis_log_dir, name="redis-one") as server:
        yield server


@pytest.fixture(scope="session")
def redis_two(redis_log_dir) -> Iterator[list[RedisServer]]:
    """Two more servers, for a layer sharded over both."""
    with (
        RedisServer(redis_log_dir, name="redis-shard-a") as first,
        RedisServer(redis_log_dir, name="redis-shard-b") as second,
    ):
        yield [first, second]


@pytest.fixture
def own_redis(redis_log_dir) -> Iterator[RedisServer]:
    """A Redis for one test, whose server-wide counters only that test moves."""
    with RedisServer(redis_log_dir, name=f"redis-{uuid.uuid4().hex[:8]}") as server:
        yield server


@pytest.fixture
def make_layer(redis_one, reactor) -> Iterator[Callable[..., FanoutRedisChannelLayer]]:
    """Makes layers on the session's Redis (or the given servers); flushes and closes them after."""
    made: list[FanoutRedisChannelLayer] = []

    def make(servers: list[RedisServer] | None = None, **config: Any) -> FanoutRedisChannelLayer:
        config = {**unique_prefixes(), **config}
        layer = FanoutRedisChannelLayer(hosts=[server.url for server in servers or [redis_one]], **config)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.flush()
        reactor.call(layer.disconnect_twisted)
