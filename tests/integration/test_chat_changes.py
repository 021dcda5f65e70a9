"""Issue 12 for the chat, through real daphne, runworker, Redis and gunicorn processes: a room
renamed while people are in it keeps them, a room deleted tells its members and the lobby, and
presence frames carry a per-room seq that grows with every change of the people present, in
the order of the counts.

Sockets are spread over both daphnes, frames over both workers. Each test has rooms of its own.
"""

from typing import Callable

import pytest
import requests

from tests.integration.clients import Socket
from tests.integration.conftest import PRESENCE_GRACE_SECONDS
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

STREAM = "/chat/stream/"
ROOMS = ["it-rename", "it-delete", "it-admin-delete", "it-seq", "it-elsewhere"]
ROOT = ("root", "rootroot")


@pytest.fixture(scope="module")
def rooms(stack):
    stack.django(
        "import json\n"
        "from chat import services\n"
        f"for slug in {ROOMS!r}:\n"
        "    services.room_create(title=slug.title(), slug=slug)\n"
        "print(json.dumps('ok'))"
    )
    return ROOMS


@pytest.fixture(scope="module")
def cookies(stack, users):
    return {name: login_cookie(stack.http_url(""), name, password) for name, password in users.items()}


@pytest.fixture
def sockets(stack, open_socket):
    def open_chat_socket(cookie, daphne: int) -> Socket:
        return open_socket(stack.ws_url(STREAM, daphne=daphne), cookie=cookie)

    return open_chat_socket


def is_error(frame: dict) -> bool:
    return "error" in frame


def is_message(room: str, text: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "message" and frame.get("room") == room and frame["message"] == text


def is_presence(room: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "presence" and frame.get("room") == room


def is_deleted(room: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "room.deleted" and frame.get("room") == room


def join(sock: Socket, room: str) -> dict:
    sock.send({"command": "join", "room": room})
    return sock.recv_until(lambda frame: frame.get("join") == room or is_error(frame))


def leave(sock: Socket, room: str) -> dict:
    sock.send({"command": "leave", "room": room})
    return sock.recv_until(lambda frame: frame.get("leave") == room or is_error(frame))


def say(sock: Socket, room: str, text: str) -> dict:
    sock.send({"command": "send", "room": room, "message": text})
    return sock.recv_until(lambda frame: is_message(room, text)(frame) or is_error(frame))


def assert_no_errors(*socks: Socket) -> None:
    for sock in socks:
        errors = [frame for frame in sock.drain(quiet=0.2) if is_error(frame)]
        assert errors == [], errors


def test_a_room_renamed_while_members_are_in_it_keeps_them(stack, cookies, rooms, sockets):
    alice = sockets(cookies["alice"], daphne=0)
    bob = sockets(cookies["bob"], daphne=1)
    assert join(alice, "it-rename")["join"] == "it-rename"
    assert join(bob, "it-rename")["join"] == "it-rename"

    # As the admin's change form does: a save of the room with a new slug.
    stack.django(
        "import json\n"
        "from chat.models import Room\n"
        "room = Room.objects.get(slug='it-rename')\n"
        "room.slug = 'it-renamed'\n"
        "room.save()\n"
        "print(json.dumps(room.pk))"
    )

    echoed = say(alice, "it-renamed", "after the rename")
    assert echoed.get("type") == "message", echoed
    assert bob.recv_until(is_message("it-renamed", "after the rename")) == echoed
    # Both ways, and the old slug is no room any more.
    reply = say(bob, "it-renamed", "heard you")
    assert alice.recv_until(is_message("it-renamed", "heard you")) == reply
    alice.send({"command": "send", "room": "it-rename", "message": "old slug"})
    assert alice.recv_until(is_error)["error"] == "room-not-found"
    # And leaving under the new slug tells the other member.
    assert leave(bob, "it-renamed") == {"leave": "it-renamed"}
    left = alice.recv_until(lambda f: f.get("type") == "left" and f.get("username") == "bob")
    assert (left["room"], left["members"]) == ("it-renamed", 1)
    assert_no_errors(alice, bob)


def room_pk(stack, slug: str) -> int:
    return stack.django(
        f"import json\nfrom chat.models import Room\nprint(json.dumps(Room.objects.get(slug={slug!r}).pk))"
    )


def group_members(stack, group: str) -> list:
    """The reply channels in a channel-layer group, as the stack's Redis holds them."""
    return stack.django(
        "import json\n"
        "from channels1_kit.conf import channel_layer\n"
        "from channels1_kit.sockets import group_members\n"
        f"print(json.dumps(sorted(channel for channel, _ in group_members(channel_layer(), {group!r}))))"
    )


def room_presence(stack, slug: str) -> dict:
    """The room's presence as the kit keeps it in the stack's Redis: sockets counted, people, seq."""
    return stack.django(
        "import json\n"
        "from channels1_kit import presence\n"
        "from chat.models import Room\n"
        f"group = Room.objects.get(slug={slug!r}).group_name\n"
        "((members, seq),) = presence.state([group]).values()\n"
        "print(json.dumps({'sockets': len(presence.sockets_in(group)), 'members': members, 'seq': seq}))"
    )


def assert_told_of_deletion(stack, slug: str, members, watcher: Socket) -> None:
    for member in members:
        notice = member.recv_until(lambda f: is_deleted(slug)(f) and "message" in f)
        assert notice == {"type": "room.deleted", "room": slug, "message": "This room was deleted."}
    assert watcher.recv_until(is_deleted(slug)) == {"type": "room.deleted", "room": slug}
    for member in members:
        member.send({"command": "send", "room": slug, "message": "anyone?"})
        assert member.recv_until(is_error)["error"] == "room-not-found"
    assert all(worker.alive() for worker in stack.workers), stack.logs()


def test_a_room_deleted_through_the_services_tells_its_members_and_the_lobby(stack, cookies, rooms, sockets):
    slug = "it-delete"
    alice = sockets(cookies["alice"], daphne=0)
    bob = sockets(cookies["bob"], daphne=1)
    watcher = sockets(cookies["boss"], daphne=0)  # in the lobby, not in the room
    assert join(alice, slug)["join"] == slug
    assert join(bob, slug)["join"] == slug
    assert watcher.recv_until(lambda f: is_presence(slug)(f) and f["members"] == 2)
    group = f"chat.room.{room_pk(stack, slug)}"
    assert len(group_members(stack, group)) == 2

    stack.django(
        "import json\n"
        "from chat import services\n"
        "from chat.models import Room\n"
        f"services.room_delete(room=Room.objects.get(slug={slug!r}))\n"
        "print(json.dumps('ok'))"
    )

    assert_told_of_deletion(stack, slug, [alice, bob], watcher)
    # The room is gone, and so is its presence: no socket counted in its group, no one in it.
    left = stack.django(
        "import json\n"
        "from channels1_kit import presence\n"
        "from chat.models import Room\n"
        f"rooms = Room.objects.filter(slug={slug!r}).count()\n"
        f"print(json.dumps([rooms, presence.sockets_in({group!r}), presence.members({group!r})]))"
    )
    assert left == [0, [], 0]
    assert group_members(stack, group) == []
    # The sockets go on in other rooms.
    assert join(alice, "it-elsewhere")["join"] == "it-elsewhere"
    assert all(worker.alive() for worker in stack.workers), stack.logs()


def admin_session(stack) -> requests.Session:
    stack.django(
        "import json\n"
        "from django.contrib.auth.models import User\n"
        f"if not User.objects.filter(username={ROOT[0]!r}).exists():\n"
        f"    User.objects.create_superuser({ROOT[0]!r}, 'root@example.com', {ROOT[1]!r})\n"
        "print(json.dumps('ok'))"
    )
    session = requests.Session()
    login = stack.http_url("/accounts/login/")
    session.get(login, timeout=10).raise_for_status()
    response = session.post(
        login,
        data={"username": ROOT[0], "password": ROOT[1], "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": login},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.status_code
    return session


def test_a_room_deleted_in_the_admin_tells_its_members_and_the_lobby(stack, cookies, rooms, sockets):
    slug = "it-admin-delete"
    alice = sockets(cookies["alice"], daphne=1)
    bob = sockets(cookies["bob"], daphne=0)
    watcher = sockets(cookies["boss"], daphne=1)
    assert join(alice, slug)["join"] == slug
    assert join(bob, slug)["join"] == slug
    assert watcher.recv_until(lambda f: is_presence(slug)(f) and f["members"] == 2)
    pk = stack.django(
        f"import json\nfrom chat.models import Room\nprint(json.dumps(Room.objects.get(slug={slug!r}).pk))"
    )

    admin = admin_session(stack)
    url = stack.http_url(f"/admin/chat/room/{pk}/delete/")
    admin.get(url, timeout=10).raise_for_status()
    response = admin.post(
        url,
        data={"post": "yes", "csrfmiddlewaretoken": admin.cookies["csrftoken"]},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]

    assert_told_of_deletion(stack, slug, [alice, bob], watcher)


def test_presence_seq_grows_with_every_change_in_the_order_of_the_counts(stack, cookies, rooms, sockets):
    slug = "it-seq"
    watcher = sockets(cookies["boss"], daphne=1)  # the lobby's view
    alice = sockets(cookies["alice"], daphne=0)
    bob = sockets(cookies["bob"], daphne=1)
    boss = sockets(cookies["boss"], daphne=0)
    alice_2 = sockets(cookies["alice"], daphne=1)

    # All at once, so that both workers take joins side by side: whatever order they ran in,
    # the counts in the order of their seqs go up one at a time.
    for sock in (alice, bob, boss):
        sock.send({"command": "join", "room": slug})
    replies = [sock.recv_until(lambda f: f.get("join") == slug or is_error(f)) for sock in (alice, bob, boss)]
    assert [reply.get("join") for reply in replies] == [slug] * 3, replies
    counts = sorted((reply["seq"], reply["members"]) for reply in replies)
    assert [members for _, members in counts] == [1, 2, 3], counts
    lobby = [watcher.recv_until(is_presence(slug)) for _ in range(3)]
    assert sorted((f["seq"], f["members"]) for f in lobby) == counts

    # Then one change at a time, each waited for on the lobby watcher.
    seen = [seq for seq, _ in counts]

    def change(action, members: int, timeout: float = 10) -> None:
        action()
        frame = watcher.recv_until(is_presence(slug), timeout=timeout)
        assert frame["members"] == members, (frame, seen)
        seen.append(frame["seq"])

    # A second tab of alice: the people are the same, so no frame and no newer count.
    tab = join(alice_2, slug)
    assert (tab["members"], tab["seq"]) == (3, seen[2]), (tab, seen)
    change(lambda: leave(bob, slug), 2)
    change(lambda: leave(boss, slug), 1)
    change(lambda: join(bob, slug), 2)
    assert leave(alice_2, slug) == {"leave": slug}  # alice is still here on her first socket
    assert room_presence(stack, slug) == {"sockets": 2, "members": 2, "seq": seen[-1]}
    change(lambda: leave(alice, slug), 1)
    # bob's page closes: a worker's reaper tells the lobby once his grace ran out.
    change(bob.close, 0, timeout=PRESENCE_GRACE_SECONDS + 10)

    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen

    # The room's members heard the same changes under the same seqs as the lobby, in order.
    lobby_counts = dict(counts)
    lobby_counts.update(zip(seen[3:], [2, 1, 2, 1, 0], strict=True))
    notices = [
        (f["seq"], f["members"])
        for f in alice.drain(quiet=0.5)
        if f.get("type") in ("joined", "left") and f.get("room") == slug
    ]
    sequential = [notice for notice in notices if notice[0] > tab["seq"]]
    assert [seq for seq, _ in sequential] == seen[3:6], (notices, seen)
    assert all(lobby_counts.get(seq) == members for seq, members in notices), (notices, lobby_counts)
    # And a page rendered now starts from the last of them.
    assert room_presence(stack, slug) == {"sockets": 0, "members": 0, "seq": seen[-1]}
    assert_no_errors(watcher)
