"""A churn soak, bounded: sockets open, join a room, say something and close, round after round;
after the first round, Redis keys and the daphnes' and workers' memory stay level.

Before the kit cleaned up after gone sockets, every socket left its channel session in Redis
for two weeks (and its wait channel's statistics for an hour), and a worker kept an entry for
every socket whose frames enforce_ordering had parked: Redis grew by about 1,300 keys a round
of 40 s here, and the processes by megabytes. The sessions' expiry is the production one
(300 s): only their deletion on disconnect keeps the count level.
"""

import json
import threading
from collections import Counter

import pytest
import redis
import websocket

from tests.integration.faults.conftest import report, seed, start_fault_stack
from tools.processes import rss_bytes, wait_until
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

SLUG, ROOM = "churn", "churn-room"
PEOPLE = ["alice", "bob", "carol", "dave"]
ROUNDS = 4
ROUND_SECONDS = 8.0
CLIENTS = 6
# Growth allowed from the end of round 2 to the end of the last, per process: allocator noise,
# not a leak (about 2 MB a round each before, in longer rounds).
RSS_TOLERANCE = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def churn_stack(tmp_path_factory):
    stack = start_fault_stack(tmp_path_factory.mktemp("churn"))
    seed(stack, slug=SLUG, room=ROOM, people=PEOPLE)
    yield stack
    stack.stop()


def key_kinds(client: redis.Redis) -> Counter:
    """Redis keys by what they are for."""
    kinds: Counter = Counter()
    for key in client.scan_iter(count=1000):
        name = key.decode("utf8", "replace")
        if ":session:" in name:
            kinds["session"] += 1
        elif "__wait__" in name:
            kinds["wait"] += 1
        else:
            kinds["other"] += 1
    return kinds


class Churner(threading.Thread):
    """One client: open a socket, join (or read the liveblog), send, close; again until told to stop."""

    def __init__(self, stack, number: int, cookie: str, stop: threading.Event):
        super().__init__(name=f"churner-{number}", daemon=True)
        self.stack, self.number, self.cookie, self.stop_event = stack, number, cookie, stop
        self.sockets = 0
        self.errors: list = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            daphne = (self.number + self.sockets) % len(self.stack.daphne_ports)
            try:
                if self.number % 3 == 2:
                    ws = websocket.create_connection(self.stack.ws_url(f"/liveblog/{SLUG}/stream/", daphne), timeout=10)
                else:
                    ws = websocket.create_connection(
                        self.stack.ws_url("/chat/stream/", daphne), timeout=10, header=[f"Cookie: {self.cookie}"]
                    )
                    ws.send(json.dumps({"command": "join", "room": ROOM}))
                    while '"join"' not in ws.recv():
                        pass
                    for n in range(3):
                        ws.send(json.dumps({"command": "send", "room": ROOM, "message": f"churn {n}"}))
                ws.close()
                self.sockets += 1
            except (websocket.WebSocketException, OSError) as error:
                self.errors.append(repr(error))


def test_redis_keys_and_process_memory_stay_level_after_the_first_round(churn_stack):
    stack = churn_stack
    client = redis.Redis(host="127.0.0.1", port=stack.redis.port, socket_timeout=5)
    cookies = [login_cookie(stack.http_url(""), name, name * 2) for name in PEOPLE]
    processes = [*stack.daphnes, *stack.workers]
    rounds = []
    for _ in range(ROUNDS):
        stop = threading.Event()
        churners = [Churner(stack, n, cookies[n % len(cookies)], stop) for n in range(CLIENTS)]
        for churner in churners:
            churner.start()
        stop.wait(ROUND_SECONDS)
        stop.set()
        for churner in churners:
            churner.join(30)
        assert not any(churner.is_alive() for churner in churners)
        # Settled: every socket's disconnect handled, nothing of any socket left in Redis.
        wait_until(
            lambda: not stack.driver("room_members", ROOM), timeout=30, message="every churned socket out of the room"
        )
        kinds = wait_until(
            lambda: (lambda k: k if not k["session"] and not k["wait"] else None)(key_kinds(client)),
            timeout=30,
            message="no channel session nor wait statistics left",
        )
        rounds.append(
            {
                "sockets": sum(churner.sockets for churner in churners),
                "errors": sum(len(churner.errors) for churner in churners),
                "keys": dict(kinds),
                "dbsize": client.dbsize(),
                "rss": {process.name: rss_bytes(process.pid) for process in processes},
            }
        )
    report("churn", {"rounds": rounds}, stack.workdir)

    assert all(row["sockets"] >= 50 for row in rounds), rounds
    assert all(row["errors"] == 0 for row in rounds), [c.errors[:3] for c in churners]
    # Keys: no more after any round than after the first (channel statistics, group keys and the
    # daphnes' snapshots come and go; nothing per socket stays).
    assert all(row["keys"]["other"] <= rounds[0]["keys"]["other"] + 2 for row in rounds), rounds
    for process in processes:
        growth = rounds[-1]["rss"][process.name] - rounds[1]["rss"][process.name]
        assert growth < RSS_TOLERANCE, (process.name, [row["rss"][process.name] for row in rounds])
