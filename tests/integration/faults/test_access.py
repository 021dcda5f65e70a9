"""Who gets in, over the real processes: the chat's send rate limit, and group memberships
that end with the socket. (Origins, anonymous sockets, staff rooms and the read-only
liveblog stream are in test_hostile_input.py.)"""

import json
import time

import pytest

from tests.integration.clients import Socket
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

ROOM, BLOG = "access", "access-blog"


@pytest.fixture(scope="module")
def access(stack, users):
    stack.django(
        "from chat import services\nfrom liveblog import services as blog\n"
        f"services.room_create(title='Access', slug={ROOM!r})\n"
        f"blog.liveblog_create(title='Access', slug={BLOG!r})\n"
    )
    return {name: login_cookie(stack.http_url(""), name, password) for name, password in users.items()}


def members(stack, group: str) -> list:
    return stack.django(
        "import json\n"
        "from channels import DEFAULT_CHANNEL_LAYER, channel_layers\n"
        f"print(json.dumps(channel_layers[DEFAULT_CHANNEL_LAYER].group_channels({group!r})))"
    )


def test_chat_sends_past_the_rate_limit_are_refused_and_not_stored(stack, access):
    sock = Socket(stack.ws_url("/chat/stream/"), cookie=access["alice"])
    sock.send({"command": "join", "room": ROOM})
    sock.recv_until(lambda f: f.get("join") == ROOM)
    # The stack runs the defaults: 10 messages in any 10 s.
    for n in range(12):
        sock.send({"command": "send", "room": ROOM, "message": f"burst {n}"})
    outcomes = []
    while len(outcomes) < 12:
        frame = sock.recv(timeout=20)
        if frame.get("type") == "message":
            outcomes.append(frame["message"])
        elif "error" in frame:
            outcomes.append(frame["error"])
    assert outcomes == [f"burst {n}" for n in range(10)] + ["rate-limited", "rate-limited"]
    stored = stack.django(
        "import json\nfrom chat.models import Message\n"
        f"print(json.dumps(list(Message.objects.filter(room__slug={ROOM!r}).values_list('text', flat=True))))"
    )
    assert stored == [f"burst {n}" for n in range(10)]
    sock.close()


def test_a_socket_leaves_every_group_when_it_closes(stack, access):
    groups = stack.django(
        "import json\nfrom chat.models import LOBBY_GROUP, Room\nfrom liveblog.models import Liveblog\n"
        f"print(json.dumps([LOBBY_GROUP, Room.objects.get(slug={ROOM!r}).group_name, "
        f"Liveblog.objects.get(slug={BLOG!r}).group_name]))"
    )
    # Sockets of earlier tests may still be in the lobby: count from here.
    before = {group: len(members(stack, group)) for group in groups}
    chat = Socket(stack.ws_url("/chat/stream/", daphne=1), cookie=access["bob"])
    chat.send({"command": "join", "room": ROOM})
    chat.recv_until(lambda f: f.get("join") == ROOM)
    page = Socket(stack.ws_url(f"/liveblog/{BLOG}/stream/"))
    page.send("hello")  # answered only once the connect was handled: the page is subscribed by then
    assert page.recv()["error"] == "read-only"
    during = {group: len(members(stack, group)) - before[group] for group in groups}

    chat.close()
    page.close()
    deadline = time.monotonic() + 30
    after = {group: len(members(stack, group)) - before[group] for group in groups}
    while any(after.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        after = {group: len(members(stack, group)) - before[group] for group in groups}

    assert during == {group: 1 for group in groups}, json.dumps(during)
    assert after == {group: 0 for group in groups}, json.dumps(after)
