"""Stock asgi_redis 1.4.3, measured in an environment of its own for the tests that show what the
fan-out layer fixes.

asgi_redis 1.4.3 runs only on the redis-py 2.10 and msgpack-python 0.5 it was written for, which
left the site's runtime set; so these measurements run in .venv-stock (requirements/stock.txt),
and the tests (tests/fanout_layer/support.py, stock()) compare them with the layer in their own
process. This file imports nothing of the site, the kit or the tests.

    .venv-stock/bin/python tests/fanout_layer/stock_probe.py SCENARIO REDIS_URL PREFIX

prints one JSON object on its last line.
"""

import json
import sys
from collections import Counter

from asgi_redis import RedisChannelLayer

# One daphne's reply channel, shared by its sockets (the "!" names).
DAPHNE = "daphne.response.AbCdEfGh!"


def join(layer, group: str, sockets: int) -> None:
    for number in range(sockets):
        layer.group_add(group, f"{DAPHNE}{number}")


def fan_out(layer, url: str) -> dict:
    """A group message to 500 sockets of one daphne: how many copies the daphne can receive."""
    join(layer, "liveblog-1", 500)
    layer.send_group("liveblog-1", {"text": "new post"})
    received = 0
    while True:
        channel, _ = layer.receive([DAPHNE], block=False)
        if channel is None:
            return {"received": received}
        received += 1


def group_send_round_trips(layer, url: str) -> dict:
    """Requests redis-py sends for one group message to 50 members (commands or pipelines)."""
    from redis.connection import Connection

    join(layer, "room", 50)
    layer.send_group("warm-up", {})
    trips: Counter = Counter()
    send = Connection.send_packed_command

    def counting_send(connection, command, *args, **kwargs):
        trips[connection.port] += 1
        return send(connection, command, *args, **kwargs)

    Connection.send_packed_command = counting_send
    try:
        layer.send_group("room", {"text": "x"})
    finally:
        Connection.send_packed_command = send
    return {"round_trips": sum(trips.values())}


def twisted_receive_connections(layer, url: str) -> dict:
    """10 messages to sockets of one daphne, received as daphne does (receive_twisted): the
    messages and how many connections Redis accepted meanwhile."""
    import redis
    from twisted.internet import defer, reactor

    for number in range(10):
        layer.send(f"{DAPHNE}{number}", {"value": number})
    client = redis.StrictRedis.from_url(url)
    before = client.info("stats")["total_connections_received"]
    received = []
    failure = []

    @defer.inlineCallbacks
    def read():
        try:
            for _ in range(1000):
                channel, message = yield layer.receive_twisted([DAPHNE])
                if channel is not None:
                    received.append(message["value"])
                    if len(received) == 10:
                        break
        except Exception as error:
            failure.append(repr(error))
        finally:
            reactor.stop()

    reactor.callWhenRunning(read)
    reactor.run(installSignalHandlers=False)
    if failure:
        raise RuntimeError(failure[0])
    connections = client.info("stats")["total_connections_received"] - before
    return {"received": sorted(received), "connections": connections}


SCENARIOS = {
    "fan-out": fan_out,
    "group-send-round-trips": group_send_round_trips,
    "twisted-receive-connections": twisted_receive_connections,
}


def main(scenario: str, url: str, prefix: str) -> None:
    layer = RedisChannelLayer(hosts=[url], prefix=prefix, stats_prefix=prefix.rstrip(":") + "-meta:")
    try:
        result = SCENARIOS[scenario](layer, url)
    finally:
        layer.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
