"""A socket that is gone leaves nothing behind in Redis, and replies to it cost no traceback.

Through the real processes (channels1_kit/gone.py, sockets.py, channel_sessions.py): a socket's
channel session lives in Redis while the socket is open (its daphne renews it), is deleted
when it closes, and is deleted by the sweep when its daphne is killed; replies to the sockets
of a killed daphne whose reply channel is full are dropped and counted in channel_report and
/ops/channels, with no traceback in the workers' logs.

The sessions' expiry here (30 s) is far longer than anything waited for, so a session that
goes was deleted, not expired.
"""

import json

import pytest
import redis
import requests

from channels1_kit.channel_sessions import session_key_for
from tests.integration.clients import Socket
from tests.integration.faults.conftest import seed, start_fault_stack
from tools.processes import wait_until
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

SLUG, ROOM = "gone", "gone-room"
SESSION_SECONDS = 30
TOKEN = "gone-sockets-token"
# A daphne's reply channel holds this many messages: a dead one's fills up after a few broadcasts.
REPLY_CAPACITY = 20
FRAMES = 5


@pytest.fixture(scope="module")
def gone_stack(tmp_path_factory):
    stack = start_fault_stack(
        tmp_path_factory.mktemp("gone-sockets"),
        settings={
            "CHANNEL_SESSION_SECONDS": str(SESSION_SECONDS),
            "CHANNEL_LAYER_PROCESS_LOCAL_CAPACITY": str(REPLY_CAPACITY),
            "MONITORING_TOKEN": TOKEN,
        },
    )
    seed(stack, slug=SLUG, room=ROOM)
    yield stack
    stack.stop()


@pytest.fixture
def redis_client(gone_stack):
    return redis.Redis(host="127.0.0.1", port=gone_stack.redis.port, socket_timeout=5)


def session_key(reply_channel: str) -> str:
    return f"asgi::session:{session_key_for(reply_channel)}"


def all_listed(stack) -> set:
    """Every socket the daphnes list in their snapshots, as full reply channel names."""
    return {name + part for name, parts in stack.driver("daphnes").items() for part in parts}


def new_socket(stack, known: set) -> str:
    """The reply channel of the one socket the daphnes list that is not in `known`."""
    return wait_until(lambda: all_listed(stack) - known, timeout=10, message="the new socket in a snapshot").pop()


def open_chat(stack, daphne: int, name: str = "alice") -> Socket:
    sock = Socket(stack.ws_url("/chat/stream/", daphne=daphne), cookie=login_cookie(stack.http_url(""), name, name * 2))
    sock.send({"command": "join", "room": ROOM})
    sock.recv_until(lambda frame: frame.get("join") == ROOM)
    return sock


def test_a_sockets_channel_session_lives_while_it_is_open_and_is_gone_once_it_closed(gone_stack, redis_client):
    stack = gone_stack
    before = all_listed(stack)
    sock = open_chat(stack, 0)
    channel = new_socket(stack, before)
    key = session_key(channel)
    assert redis_client.exists(key)
    # Minutes, not SESSION_COOKIE_AGE (two weeks).
    assert 0 < redis_client.ttl(key) <= SESSION_SECONDS

    # Idle, its daphne renews it (every third of the expiry): the TTL goes up again by itself.
    lowest = [redis_client.ttl(key)]

    def renewed() -> bool:
        ttl = redis_client.ttl(key)
        lowest[0] = min(lowest[0], ttl)
        return ttl > lowest[0]

    wait_until(renewed, timeout=SESSION_SECONDS / 3 + 10, message="the daphne renews the open socket's session")
    sock.send({"command": "send", "room": ROOM, "message": "still here"})
    assert sock.recv_until(lambda frame: frame.get("type") == "message")["message"] == "still here"

    sock.close()
    wait_until(lambda: not redis_client.exists(key), timeout=10, message="the closed socket's session deleted")
    # Nor anything else of it: no session at all is left of it, and no wait channel's statistics.
    assert not [k for k in redis_client.scan_iter(match=f"*{channel.replace('!', '?')}*")]


def test_a_killed_daphnes_sockets_sessions_are_swept(gone_stack, redis_client):
    stack = gone_stack
    before = all_listed(stack)
    bob = open_chat(stack, 1, "bob")
    bob_channel = new_socket(stack, before)
    dave = open_chat(stack, 1, "dave")
    dave_channel = new_socket(stack, before | {bob_channel})
    keys = [session_key(bob_channel), session_key(dave_channel)]
    wait_until(lambda: all(redis_client.exists(key) for key in keys), timeout=10, message="both sessions written")

    stack.kill("daphne", 1)
    try:
        # Gone long before they would expire: the sweep deleted them once the daphne was dead.
        wait_until(
            lambda: not any(redis_client.exists(key) for key in keys),
            timeout=SESSION_SECONDS / 2,
            message="the killed daphne's sockets' sessions swept",
        )
        logs = "".join(worker.log_path.read_text(errors="replace") for worker in stack.workers)
        assert "channel session(s); dead daphnes: " + bob_channel.partition("!")[0] + "!" in logs
    finally:
        for sock in (bob, dave):
            sock.ws.shutdown()
        stack.respawn("daphne", 1)


def channel_report(stack) -> dict:
    return json.loads(stack.manage("channel_report", "--json", "--interval", "0.2").stdout)


def test_replies_to_a_killed_daphnes_sockets_are_dropped_and_counted_without_a_traceback(gone_stack):
    stack = gone_stack
    before = all_listed(stack)
    sock = open_chat(stack, 1, "carol")
    channel = new_socket(stack, before)
    dead = channel.partition("!")[0] + "!"

    # Frames the workers will only see once the daphne is gone, each answered with an error frame.
    for index in range(len(stack.workers)):
        stack.hold_down("worker", index)
    for n in range(FRAMES):
        sock.send(f"not json {n}")
    wait_until(lambda: stack.driver("backlog", "websocket.receive") >= FRAMES, timeout=10, message="frames queued")
    stack.kill("daphne", 1)
    sock.ws.shutdown()
    wait_until(lambda: dead not in stack.driver("daphnes"), timeout=15, message="the killed daphne's snapshot expired")
    # Broadcasts to the room fill the dead daphne's reply channel, which nothing reads now.
    for n in range(REPLY_CAPACITY + 2):
        stack.driver("say", ROOM, "alice", f"broadcast {n}")
    logged = {worker.name: worker.log_path.stat().st_size for worker in stack.workers}

    for index in range(len(stack.workers)):
        stack.release("worker", index)
    stack.respawn("daphne", 1)

    report = wait_until(
        lambda: (lambda r: r if r["replies_dropped_to_gone_sockets"] >= FRAMES else None)(channel_report(stack)),
        timeout=30,
        message="channel_report counts the dropped replies",
    )
    assert report["replies_dropped_to_gone_sockets"] == FRAMES, report
    assert report["channels"][dead]["replies_dropped_gone"] == FRAMES, report["channels"].get(dead)
    ops = requests.get(
        stack.http_url("/ops/channels?interval=0.2"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20
    ).json()
    assert ops["replies_dropped_to_gone_sockets"] == FRAMES
    new_lines = "".join(
        worker.log_path.read_bytes()[logged[worker.name] :].decode(errors="replace") for worker in stack.workers
    )
    assert "Traceback" not in new_lines and "ChannelFull" not in new_lines, new_lines[-3000:]
    assert f"{dead} is gone: replies to its sockets are dropped" in new_lines
