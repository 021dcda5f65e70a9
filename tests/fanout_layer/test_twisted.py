"""receive_twisted, as daphne uses it, on the real Twisted reactor and real Redis servers."""

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import command_calls, raw_client, stock

DAPHNE = "daphne.response.TwIsTeD!"


def connections_made(client) -> int:
    return client.info("stats")["total_connections_received"]


def fan_out(layer, sockets: int) -> set[str]:
    channels = {f"{DAPHNE}{number}" for number in range(sockets)}
    for channel in channels:
        layer.group_add("room", channel)
    layer.send_group("room", {"text": "hello"})
    return channels


def receive_all(reactor, layer, count: int, *, calls: int = 1000) -> list[tuple[str, dict]]:
    """Calls receive_twisted as daphne's reader loop does, until count messages have come."""
    received = []
    for _ in range(calls):
        channel, message = reactor.call(layer.receive_twisted, [DAPHNE])
        if channel is not None:
            received.append((channel, message))
            if len(received) == count:
                return received
    raise AssertionError(f"{len(received)} of {count} messages after {calls} calls")


def test_receive_twisted_keeps_one_connection_and_takes_batches(own_redis, make_layer, reactor):
    layer = make_layer([own_redis], receive_batch_size=100)
    sockets = fan_out(layer, 200)
    client = raw_client(own_redis)
    client.config_resetstat()
    before = connections_made(client)

    received = receive_all(reactor, layer, 200)

    assert sorted(channel for channel, _ in received) == sorted(sockets)
    assert all(message == {"text": "hello"} for _, message in received)
    assert connections_made(client) - before == 1
    calls = command_calls(client)
    assert calls.get("eval", 0) + calls.get("evalsha", 0) == 2
    assert "blpop" not in calls


def test_receive_twisted_waits_for_a_message_and_returns_nothing_when_none_comes(own_redis, make_layer, reactor):
    layer = make_layer([own_redis])
    # daphne's reader loop calls again at once: only BLPOP's wait keeps it from spinning.
    layer.blpop_timeout = 1
    client = raw_client(own_redis)
    client.config_resetstat()

    assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    assert command_calls(client)["blpop"] == 1

    layer.send(DAPHNE + "late", {"value": 1})
    assert reactor.call(layer.receive_twisted, [DAPHNE]) == (DAPHNE + "late", {"value": 1})


def test_receive_twisted_reconnects_when_its_connection_drops(own_redis, make_layer, reactor):
    layer = make_layer([own_redis], receive_batch_size=10)
    sockets = fan_out(layer, 100)
    client = raw_client(own_redis)
    before = connections_made(client)

    received = receive_all(reactor, layer, 30)
    killed = client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    received += receive_all(reactor, layer, 70)

    assert killed >= 1
    assert sorted(channel for channel, _ in received) == sorted(sockets)
    assert connections_made(client) - before == 2


def test_stock_asgi_redis_connects_again_for_every_message(own_redis):
    """What the layer fixes: asgi_redis opens (and closes) a connection pool per message."""
    measured = stock("twisted-receive-connections", own_redis)

    assert measured["received"] == list(range(10))
    assert measured["connections"] >= 10


class BlackHole:
    """A TCP server that takes connections and never answers: a Redis gone half-open."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def test_receive_twisted_replaces_a_connection_that_stops_answering(black_hole, reactor, caplog):
    layer = FanoutRedisChannelLayer(hosts=[f"redis://127.0.0.1:{black_hole.port}/0"])
    layer.blpop_timeout = layer.reply_timeout = 1
    try:
        with caplog.at_level(logging.WARNING, logger="fanout_layer"):
            assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
            assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    finally:
        reactor.call(layer.disconnect_twisted)

    assert len(black_hole.accepted) == 2
    assert caplog.text.count("Redis shard 0 did not answer within 1s: reconnecting") == 2
