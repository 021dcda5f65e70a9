"""CPU per Redis command of the kit's clients and of the layer's send, receive and group send.

    python -m bench.redis_commands PORT

against a redis-server of your own (``redis-server --port PORT --save ""``). Prints the least and
the median CPU time (user + system) per call over seven rounds. Run it in two checkouts' virtualenvs
in turn to compare them (issue 20 compared redis-py 2.10.6 with 8.2 this way, see CHANGELOG.md).
"""

import resource
import sys

import redis

from channels1_kit import redis_urls
from fanout_layer import FanoutRedisChannelLayer

ROUNDS = 7
CALLS = 4000
DAPHNE = "daphne.response.AbC!"
MESSAGE = {
    "text": '{"command": "send", "room": "lobby", "message": "hello"}',
    "reply_channel": DAPHNE + "x",
    "path": "/chat/stream/",
    "order": 1,
}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(call, calls: int = CALLS) -> tuple:
    """(least, median) µs of CPU per call."""
    rounds = []
    for _ in range(ROUNDS):
        started = cpu()
        for _ in range(calls):
            call()
        rounds.append((cpu() - started) / calls * 1e6)
    rounds.sort()
    return rounds[0], rounds[len(rounds) // 2]


def main(port: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    client = redis_urls.parse(url).redis_client()
    client.set("bench:k", b"x" * 200)
    layer = FanoutRedisChannelLayer(hosts=[url], prefix="bench-commands:")
    for number in range(50):
        layer.group_add("g", f"{DAPHNE}s{number}")

    def send_receive():
        layer.send("websocket.receive", MESSAGE)
        layer.receive(["websocket.receive"])

    def reply_receive():
        layer.send(DAPHNE + "x", MESSAGE)
        layer.receive([DAPHNE])

    def group_send():
        layer.send_group("g", {"text": "post"})
        for _ in range(50):
            layer.receive([DAPHNE])

    rows = []
    if not redis.__version__.startswith("2."):
        from channels1_kit import redis_client

        stock = redis.Redis(port=port, protocol=2, socket_timeout=None)
        rows.append(("GET, redis-py's own client", measure(lambda: stock.get("bench:k"))))
        rows.append(("GET, redis_client.command", measure(lambda: redis_client.command(client, "GET", "bench:k"))))
    rows += [
        ("GET, the kit's client", measure(lambda: client.get("bench:k"))),
        ("SET EX, the kit's client", measure(lambda: client.set("bench:s", b"v", ex=60))),
        ("send + receive (websocket.receive)", measure(send_receive, CALLS // 2)),
        ("send + receive (a reply, !)", measure(reply_receive, CALLS // 2)),
        ("group send to 50 + 50 receives", measure(group_send, 100)),
    ]
    print(f"redis-py {redis.__version__}")
    for name, (least, median) in rows:
        print(f"  {name:36s} least {least:7.1f} µs  median {median:7.1f} µs")
    layer.flush()
    client.delete("bench:k", "bench:s")


if __name__ == "__main__":
    main(int(sys.argv[1]))
