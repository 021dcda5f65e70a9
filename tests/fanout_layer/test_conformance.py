"""asgiref's ASGI 1 conformance suite against the fan-out layer on real Redis servers.

Each class runs the whole suite on one configuration: one Redis, two sharded ones,
encrypted messages, and with every receive going through receive_twisted on a real reactor.
"""

from typing import Any

import pytest
from asgiref import conformance

from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import unique_prefixes


@pytest.fixture(scope="class")
def conformance_layer(request, redis_one, redis_two, reactor):
    cls = request.cls
    servers = redis_two if cls.shards == 2 else [redis_one]
    layer = FanoutRedisChannelLayer(hosts=[server.url for server in servers], **cls.layer_config, **unique_prefixes())
    if cls.blpop_timeout is not None:
        layer.blpop_timeout = cls.blpop_timeout
    cls.channel_layer = layer
    cls.reactor = reactor
    yield
    layer.flush()
    reactor.call(layer.disconnect_twisted)


# Not imported by name: pytest would collect (and skip) the abstract suite itself.
@pytest.mark.usefixtures("conformance_layer")
class TestSingleHost(conformance.ConformanceTestCase):
    shards = 1
    # Short enough for the suite's expiry tests to run rather than skip.
    layer_config: dict[str, Any] = {
        "expiry": 1,
        "group_expiry": 2,
        "capacity": 5,
        # The suite holds process-local channels to the same limit as the others.
        "process_local_capacity": 5,
    }
    blpop_timeout: int | None = None
    expiry_delay = 1.1
    capacity_limit = 5


class TestTwoShards(TestSingleHost):
    shards = 2
    # Sends to an ordinary channel alternate between the shards, each holding up to
    # `capacity` (as with asgi_redis); a process-local channel lives on one shard.
    capacity_limit = 10
    layer_config = {**TestSingleHost.layer_config, "process_local_capacity": 10}


class TestEncrypted(TestSingleHost):
    layer_config = {**TestSingleHost.layer_config, "symmetric_encryption_keys": ["conformance-key", "an-older-key"]}


class TestEncryptedTwoShards(TestTwoShards):
    layer_config = {**TestTwoShards.layer_config, "symmetric_encryption_keys": ["conformance-key"]}


class TestTwistedReceive(TestSingleHost):
    """Every receive the suite makes goes through receive_twisted, as daphne's does."""

    # receive_twisted waits this long when there is nothing; the suite often expects nothing.
    blpop_timeout = 1

    def receive(self, channels):
        for _ in range(self.receive_tries):
            channel, message = self.reactor.call(self.channel_layer.receive_twisted, channels)
            if channel is not None:
                return channel, message
        return None, None


class TestTwistedReceiveTwoShards(TestTwistedReceive):
    shards = 2
    capacity_limit = TestTwoShards.capacity_limit
    layer_config = TestTwoShards.layer_config
