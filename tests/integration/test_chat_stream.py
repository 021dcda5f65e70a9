"""The chat through real daphne, runworker, Redis and gunicorn processes.

Every socket logs in through gunicorn's login page, as a browser does. Sockets of one
test are spread over both daphnes, and their frames over both workers, so presence
and broadcasts cross processes. Each test has its own room, so counts do not mix.
"""

import json
import time
from typing import Callable

import pytest

from tests.integration.clients import Socket
from tests.integration.conftest import PRESENCE_GRACE_SECONDS
from tools.processes import wait_until
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

STREAM = "/chat/stream/"
ROOMS = [
    ("it-crossing", False),
    ("it-notices", False),
    ("it-busy", False),
    ("it-history", False),
    ("it-catchup", False),
    ("it-errors", False),
    ("it-grace", False),
    ("it-staff", True),
]


@pytest.fixture(scope="module")
def rooms(stack):
    rooms = json.dumps(ROOMS)
    stack.django(
        "import json\n"
        "from chat import services\n"
        f"for slug, staff_only in json.loads({rooms!r}):\n"
        "    services.room_create(title=slug.title(), slug=slug, staff_only=staff_only)\n"
        "print(json.dumps('ok'))"
    )
    return {slug for slug, _ in ROOMS}


@pytest.fixture(scope="module")
def cookies(stack, users):
    return {name: login_cookie(stack.http_url(""), name, password) for name, password in users.items()}


@pytest.fixture
def sockets(open_socket):
    """Opens chat sockets for a test; they are closed after it."""

    def open_chat_socket(stack, cookie=None, daphne: int = 0) -> Socket:
        return open_socket(stack.ws_url(STREAM, daphne=daphne), cookie=cookie)

    return open_chat_socket


def is_join(room: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("join") == room


def is_notice(kind: str, room: str, username: str) -> Callable[[dict], bool]:
    return lambda frame: (frame.get("type"), frame.get("room"), frame.get("username")) == (kind, room, username)


def is_message(room: str, text: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "message" and frame.get("room") == room and frame["message"] == text


def is_error(frame: dict) -> bool:
    return "error" in frame


def join(sock: Socket, room: str, **extra) -> dict:
    sock.send({"command": "join", "room": room, **extra})
    return sock.recv_until(lambda frame: is_join(room)(frame) or is_error(frame))


def say(sock: Socket, room: str, text: str) -> dict:
    """Sends a message and waits for it to come back to the sender from the room's group."""
    sock.send({"command": "send", "room": room, "message": text})
    return sock.recv_until(lambda frame: is_message(room, text)(frame) or is_error(frame))


def presence_of(stack, room: str) -> dict:
    """The room's presence as the kit keeps it in the stack's Redis: sockets counted, and people."""
    return stack.django(
        "import json\n"
        "from channels1_kit import presence\n"
        "from chat.models import Room\n"
        f"group = Room.objects.get(slug={room!r}).group_name\n"
        "print(json.dumps({'sockets': len(presence.sockets_in(group)), 'members': presence.members(group)}))"
    )


def eventually_presence(stack, room: str, expected: dict, timeout: float = 30.0) -> dict:
    """Disconnects are handled by a worker after the socket is gone: wait for presence to agree."""
    return wait_until(
        lambda: presence_of(stack, room) == expected and expected,
        timeout=timeout,
        message=f"presence of {room} is {expected}",
    )


def forget(sock: Socket) -> None:
    """Drops every frame received so far, so that the next wait is for a new one."""
    sock.drain(quiet=0.3)
    sock.frames.clear()


def assert_no_errors(*socks: Socket) -> None:
    for sock in socks:
        errors = [frame for frame in sock.drain(quiet=0.2) if is_error(frame)]
        assert errors == [], errors


def test_a_message_crosses_daphnes_to_the_other_user_and_back_to_the_sender(stack, cookies, rooms, sockets):
    room = "it-crossing"
    alice = sockets(stack, cookies["alice"], daphne=0)
    bob = sockets(stack, cookies["bob"], daphne=1)
    assert join(alice, room)["members"] == 1
    assert join(bob, room)["members"] == 2
    assert alice.recv_until(is_notice("joined", room, "bob"))["members"] == 2

    echoed = say(alice, room, "hello from daphne 0")
    received = bob.recv_until(is_message(room, "hello from daphne 0"))

    assert received == echoed
    assert received["username"] == "alice"
    stored = stack.django(
        "import json\n"
        "from chat.models import Message\n"
        f"m = Message.objects.get(id={received['id']})\n"
        "print(json.dumps([m.room.slug, m.user.username, m.text]))"
    )
    assert stored == [room, "alice", "hello from daphne 0"]

    # And back the other way.
    reply = say(bob, room, "hi from daphne 1")
    assert alice.recv_until(is_message(room, "hi from daphne 1")) == reply
    assert_no_errors(alice, bob)


def test_join_and_leave_notices_carry_the_member_count(stack, cookies, rooms, sockets):
    room = "it-notices"
    alice = sockets(stack, cookies["alice"], daphne=1)
    bob = sockets(stack, cookies["bob"], daphne=0)
    boss = sockets(stack, cookies["boss"], daphne=1)
    join(alice, room)
    join(bob, room)
    assert alice.recv_until(is_notice("joined", room, "bob"))["members"] == 2
    assert join(boss, room)["members"] == 3
    assert alice.recv_until(is_notice("joined", room, "boss"))["members"] == 3
    assert bob.recv_until(is_notice("joined", room, "boss"))["members"] == 3

    bob.send({"command": "leave", "room": room})
    assert bob.recv_until(lambda frame: frame.get("leave") == room) == {"leave": room}
    assert alice.recv_until(is_notice("left", room, "bob"))["members"] == 2
    assert boss.recv_until(is_notice("left", room, "bob"))["members"] == 2

    # Closing the socket is leaving too, once boss's grace ran out with no socket of his back:
    # a worker's reaper tells the room.
    closed = time.monotonic()
    boss.close()
    assert alice.recv_until(is_notice("left", room, "boss"), timeout=PRESENCE_GRACE_SECONDS + 10)["members"] == 1
    assert time.monotonic() - closed >= PRESENCE_GRACE_SECONDS - 0.5
    assert presence_of(stack, room) == {"sockets": 1, "members": 1}
    assert_no_errors(alice, bob)


def test_a_page_that_reconnects_within_the_grace_is_neither_left_nor_joined(stack, cookies, rooms, sockets):
    room = "it-grace"
    alice = sockets(stack, cookies["alice"], daphne=0)
    bob = sockets(stack, cookies["bob"], daphne=1)
    join(alice, room)
    assert join(bob, room)["members"] == 2
    bob_joined = alice.recv_until(is_notice("joined", room, "bob"))
    assert alice.recv_until(lambda f: f.get("type") == "presence" and f["room"] == room and f["members"] == 2)
    forget(alice)

    # bob's page loses its socket and comes back on the other daphne, as after a deploy (its new
    # socket is opened first, so that it rejoins well within the grace).
    again = sockets(stack, cookies["bob"], daphne=0)
    bob.close()
    # A worker took the disconnect: bob's socket is counted no more, but he is, within his grace.
    eventually_presence(stack, room, {"sockets": 1, "members": 2}, timeout=PRESENCE_GRACE_SECONDS)
    rejoined = join(again, room)

    # The same people, under the same presence number: no newer count to show.
    assert (rejoined["members"], rejoined["seq"]) == (2, bob_joined["seq"])
    eventually_presence(stack, room, {"sockets": 2, "members": 2})
    # Past the grace and the reaper: still nothing to tell.
    frames = alice.drain(quiet=PRESENCE_GRACE_SECONDS + 2)
    assert [f for f in frames if f.get("room") == room] == [], frames
    assert presence_of(stack, room) == {"sockets": 2, "members": 2}
    assert_no_errors(alice, again)


def test_presence_stays_right_over_two_daphnes_and_two_workers(stack, cookies, rooms, sockets):
    room = "it-busy"
    # A lobby watcher: logged in, not in the room, hears the room's count.
    watcher = sockets(stack, cookies["bob"], daphne=1)
    members = [
        ("alice", sockets(stack, cookies["alice"], daphne=0)),
        ("alice", sockets(stack, cookies["alice"], daphne=1)),
        ("bob", sockets(stack, cookies["bob"], daphne=0)),
        ("boss", sockets(stack, cookies["boss"], daphne=1)),
    ]
    # All joins at once, so that both workers handle them side by side.
    for _, sock in members:
        sock.send({"command": "join", "room": room})
    replies = [sock.recv_until(lambda f: is_join(room)(f) or is_error(f)) for _, sock in members]
    assert [reply.get("join") for reply in replies] == [room] * 4, replies
    # Each count is taken right after its own join, one join at a time: the last is everyone.
    assert max(reply["members"] for reply in replies) == 3
    assert presence_of(stack, room) == {"sockets": 4, "members": 3}
    assert watcher.recv_until(lambda f: f.get("type") == "presence" and f["room"] == room and f["members"] == 3)
    for _, sock in members:
        # At most one joined notice per person, however many sockets they have.
        joined = [f["username"] for f in sock.drain(quiet=0.3) if f.get("type") == "joined" and f["room"] == room]
        assert len(joined) == len(set(joined)), joined

    # From here on one change at a time, each waited for, so every count is exact.
    alice_0, alice_1, bob, boss = (sock for _, sock in members)
    forget(watcher)
    boss.send({"command": "leave", "room": room})
    assert alice_0.recv_until(is_notice("left", room, "boss"))["members"] == 2
    assert watcher.recv_until(lambda f: f.get("type") == "presence" and f["room"] == room)["members"] == 2

    # alice closes one of her two sockets: she is still here, so nobody hears she left.
    alice_1.close()
    eventually_presence(stack, room, {"sockets": 2, "members": 2})
    alice_0.send({"command": "leave", "room": room})
    left = bob.recv_until(is_notice("left", room, "alice"))
    assert left["members"] == 1
    assert [f for f in bob.drain(quiet=0.3) if is_notice("left", room, "alice")(f)] == []

    bob.close()
    assert alice_0.recv_until(
        lambda f: f.get("type") == "presence" and f["room"] == room and f["members"] == 0,
        timeout=PRESENCE_GRACE_SECONDS + 10,
    )
    eventually_presence(stack, room, {"sockets": 0, "members": 0})
    assert watcher.recv_until(lambda f: f.get("type") == "presence" and f["room"] == room and f["members"] == 0)
    assert_no_errors(watcher, alice_0, boss)
    assert all(worker.alive() for worker in stack.workers)


def test_messages_are_stored_and_join_replays_the_recent_history(stack, cookies, rooms, sockets):
    room = "it-history"
    alice = sockets(stack, cookies["alice"], daphne=0)
    join(alice, room)
    sent = [say(alice, room, f"history {n}") for n in range(3)]

    stored = stack.django(
        "import json\n"
        "from chat.models import Message\n"
        f"print(json.dumps(list(Message.objects.filter(room__slug={room!r}).values_list('id', 'text'))))"
    )
    assert stored == [[frame["id"], frame["message"]] for frame in sent]

    bob = sockets(stack, cookies["bob"], daphne=1)
    reply = join(bob, room)
    assert reply["messages"] == sent
    assert reply["title"] == "It-History"


def test_a_reconnecting_client_with_since_gets_exactly_what_it_missed(stack, cookies, rooms, sockets):
    room = "it-catchup"
    alice = sockets(stack, cookies["alice"], daphne=0)
    join(alice, room)
    bob = sockets(stack, cookies["bob"], daphne=1)
    join(bob, room)
    seen = say(alice, room, "before the drop")
    assert bob.recv_until(is_message(room, "before the drop"))["id"] == seen["id"]

    bob.close()
    missed = [say(alice, room, f"while away {n}") for n in range(3)]

    # Back on the other daphne, as after a reconnect through a load balancer.
    bob = sockets(stack, cookies["bob"], daphne=0)
    reply = join(bob, room, since=seen["id"])
    assert reply["messages"] == missed
    bob.send({"command": "history", "room": room, "since": seen["id"]})
    assert bob.recv_until(lambda f: f.get("history") == room)["messages"] == missed

    # And live again after the catch-up.
    after = say(alice, room, "welcome back")
    assert bob.recv_until(is_message(room, "welcome back")) == after
    assert_no_errors(alice, bob)


BAD_INPUT = [
    ("staff-room", {"command": "join", "room": "it-staff"}, "room-forbidden"),
    ("unknown-room", {"command": "join", "room": "it-no-such-room"}, "room-not-found"),
    ("missing-room", {"command": "join"}, "invalid-room"),
    ("invalid-json", '{"command": "join", "room"', "invalid-json"),
    ("not-an-object", '["join", "it-errors"]', "invalid-frame"),
    ("binary", b'{"command": "join", "room": "it-errors"}', "binary-frame"),
    ("unknown-command", {"command": "shout", "room": "it-errors"}, "unknown-command"),
    ("missing-command", {"room": "it-errors"}, "invalid-command"),
    ("non-string-command", {"command": 7, "room": "it-errors"}, "invalid-command"),
    ("empty-message", {"command": "send", "room": "it-errors", "message": " \n "}, "message-empty"),
    ("long-message", {"command": "send", "room": "it-errors", "message": "x" * 2001}, "message-too-long"),
    ("non-string-message", {"command": "send", "room": "it-errors", "message": None}, "invalid-message"),
    ("not-joined", {"command": "send", "room": "it-crossing", "message": "hi"}, "not-in-room"),
    ("invalid-since", {"command": "join", "room": "it-errors", "since": "last"}, "invalid-since"),
    ("negative-since", {"command": "history", "room": "it-errors", "since": -1}, "invalid-since"),
]


@pytest.mark.parametrize(
    "daphne, bad, code",
    [(index % 2, bad, code) for index, (_, bad, code) in enumerate(BAD_INPUT)],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_gets_its_own_error_code_and_the_socket_still_works(
    stack, cookies, rooms, sockets, daphne, bad, code
):
    sock = sockets(stack, cookies["bob"], daphne=daphne)
    # Some commands need the room joined first to reach the check they are about.
    assert join(sock, "it-errors")["join"] == "it-errors"

    if isinstance(bad, bytes):
        sock.send_binary(bad)
    else:
        sock.send(bad)

    error = sock.recv_until(is_error)
    assert error["error"] == code
    assert error["message"]
    text = f"still working after {code}"
    assert say(sock, "it-errors", text)["message"] == text
    assert sock.connected
    assert all(worker.alive() for worker in stack.workers), stack.logs()


def test_an_anonymous_socket_is_told_to_log_in(stack, rooms, sockets):
    sock = sockets(stack, daphne=1)
    assert sock.recv()["error"] == "login-required"

    sock.send({"command": "join", "room": "it-errors"})
    assert sock.recv()["error"] == "login-required"
    sock.send({"command": "send", "room": "it-errors", "message": "hi"})
    assert sock.recv()["error"] == "login-required"
    assert sock.connected


def test_staff_may_join_the_staff_room(stack, cookies, rooms, sockets):
    sock = sockets(stack, cookies["boss"], daphne=0)
    assert join(sock, "it-staff")["join"] == "it-staff"


def test_the_workers_outlived_all_the_bad_input(stack):
    assert len(stack.workers) >= 2
    assert [worker.alive() for worker in stack.workers] == [True] * len(stack.workers), stack.logs()
    assert all(daphne.alive() for daphne in stack.daphnes)


# -- the runtime the stack runs on --------------------------------------------------------


def test_the_stack_runs_msgpack_1_with_its_c_extension(stack):
    """The layer serializes itself on msgpack >= 1.0 (asgi_redis 1.x's encoding= is never called), with
    the C extension: msgpack-python 0.5.6 built none on Python 3.11+ and packed in pure Python."""
    found = stack.django("import json, msgpack\nprint(json.dumps([list(msgpack.version), msgpack.Packer.__module__]))")
    assert tuple(found[0]) >= (1, 0, 0) and found[1] == "msgpack._cmsgpack", found


def test_an_asgi_redis_send_and_receive_round_trip_through_the_stacks_redis(stack):
    sent = {"text": "héllo ✓", "bytes": b"\x00\xff binary", "order": 3, "nested": {"list": [1, "two", None]}}
    result = stack.django(
        "import json\n"
        "import asgi_redis\n"
        "from channels.asgi import channel_layers\n"
        "layer = channel_layers['default'].channel_layer\n"
        "sent = " + repr(sent) + "\n"
        "name = layer.new_channel('roundtrip.test?')\n"
        "layer.send(name, sent)\n"
        "channel, got = layer.receive([name], block=True)\n"
        "layer.group_add('roundtrip.group', name)\n"
        "layer.send_group('roundtrip.group', {'text': 'to the group'})\n"
        "_, via_group = layer.receive([name], block=True)\n"
        "print(json.dumps({'asgi_redis': isinstance(layer, asgi_redis.RedisChannelLayer), 'channel': channel == name, "
        "'same': got == sent, 'types': sorted(type(v).__name__ for v in got.values()), 'group': via_group}))"
    )
    assert result == {
        "asgi_redis": True,
        "channel": True,
        "same": True,
        "types": ["bytes", "dict", "int", "str"],
        "group": {"text": "to the group"},
    }
