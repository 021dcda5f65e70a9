"""Chat presence in Redis (channels1_kit.presence) over two daphnes and two workers: the count every
page shows is exact through joins, leaves, tabs, quick reconnects (within the grace: no left,
no joined), people who do not come back (left once the grace runs out), a SIGKILLed daphne
(swept) and an empty Redis restart (every page closed with 4503, rejoins, counts right)."""

import pytest
import requests

from tests.integration.clients import Socket
from tools.processes import Process, wait_for_port, wait_until
from tools.site_stack import Stack, login_cookie

pytestmark = pytest.mark.integration

GRACE = 2
ROOM = "presence"
PEOPLE = ["alice", "bob", "carol", "dave", "erin"]


@pytest.fixture
def stack(tmp_path):
    stack = Stack(
        tmp_path,
        daphnes=2,
        workers=2,
        settings={
            "PRESENCE_GRACE_SECONDS": str(GRACE),
            "SOCKET_HEARTBEAT_SECONDS": "1",
            "SOCKET_SWEEP_SECONDS": "1",
            "CHANNEL_SESSION_SECONDS": "3",
        },
    )
    stack.start()
    stack.django(
        "from django.contrib.auth.models import User\nfrom chat.services import room_create\n"
        f"room_create(title='Presence', slug={ROOM!r})\n"
        f"for name in {PEOPLE!r}:\n    User.objects.create_user(name, password='pw')\n"
    )
    yield stack
    stack.stop()


class Page:
    """A chat page in the room: what count it shows (the frame with the highest seq wins)."""

    def __init__(self, stack: Stack, cookie: str, daphne: int):
        self.socket = Socket(stack.ws_url("/chat/stream/", daphne), cookie=cookie)
        self.socket.send({"command": "join", "room": ROOM})
        reply = self.socket.recv_until(lambda frame: frame.get("join") == ROOM)
        self.seq, self.members = reply["seq"], reply["members"]
        self.announced: list = []

    def read(self) -> None:
        """Takes whatever frames have come (a short wait for none)."""
        for frame in self.socket.drain(quiet=0.05):
            if frame.get("room") == ROOM and frame.get("type") in ("joined", "left", "presence"):
                if frame["type"] != "presence":
                    self.announced.append((frame["type"], frame["username"]))
                if frame["seq"] > self.seq:
                    self.seq, self.members = frame["seq"], frame["members"]
        self.socket.frames.clear()

    def close(self) -> None:
        self.socket.close()


def counted(stack: Stack) -> int:
    return stack.django(
        "import json\nfrom channels1_kit import presence\nfrom chat.models import Room\n"
        f"print(json.dumps(presence.members(Room.objects.get(slug={ROOM!r}).group_name)))"
    )


def shows(pages, members: int, stack: Stack, *, timeout: float = 20) -> None:
    def right() -> bool:
        for page in pages:
            page.read()
        return all(page.members == members for page in pages)

    wait_until(right, timeout=timeout, interval=0.1, message=f"every page showing {members}")
    assert counted(stack) == members


def test_presence_counts_stay_exact_through_tabs_reconnects_crashes_and_an_empty_redis_restart(stack):
    cookies = {name: login_cookie(stack.http_url(""), name, "pw") for name in PEOPLE}
    # A watcher on each daphne.
    erin = Page(stack, cookies["erin"], 1)
    carol = Page(stack, cookies["carol"], 0)
    watchers = [erin, carol]
    shows(watchers, 2, stack)

    # Joins over both daphnes; a second tab counts once; a leave asked for is announced at once.
    alice = [Page(stack, cookies["alice"], 0), Page(stack, cookies["alice"], 1)]
    bob = Page(stack, cookies["bob"], 1)
    shows(watchers, 4, stack)
    assert erin.announced.count(("joined", "alice")) == 1
    bob.socket.send({"command": "leave", "room": ROOM})
    shows(watchers, 3, stack, timeout=GRACE)
    assert ("left", "bob") in erin.announced
    bob.close()

    # Alice closes both tabs and comes back within the grace: neither left nor joined.
    erin.announced.clear()
    for tab in alice:
        tab.close()
    alice = [Page(stack, cookies["alice"], 1)]
    shows(watchers, 3, stack)
    wait_until(lambda: counted(stack) == 3, timeout=GRACE * 3, message="still 3 after the grace")
    for page in watchers:
        page.read()
    assert ("left", "alice") not in erin.announced and ("joined", "alice") not in erin.announced

    # Alice goes for good: left once her grace has run out, not before.
    alice[0].close()
    shows(watchers, 2, stack, timeout=GRACE + 10)
    assert erin.announced.count(("left", "alice")) == 1

    # Dave's daphne (and carol's) is killed: no disconnect comes; the sweep takes both out,
    # after their grace.
    dave = Page(stack, cookies["dave"], 0)
    shows([erin], 3, stack)
    stack.daphnes[0].kill()
    shows([erin], 1, stack, timeout=30)
    assert ("left", "dave") in erin.announced and ("left", "carol") in erin.announced
    del dave
    # Started again on its port, as supervisord's autorestart would.
    old = stack.daphnes[0]
    stack.daphnes[0] = Process(old.name, old.args, env=stack.env, log_dir=stack.log_dir)
    wait_for_port(stack.daphne_ports[0], process=stack.daphnes[0])
    carol = Page(stack, cookies["carol"], 0)
    watchers = [erin, carol]
    shows(watchers, 2, stack)

    # Redis restarts empty: every page is closed with 4503, rejoins, and the counts are right,
    # each newer than what the pages held.
    seq_before = erin.seq
    stack.redis.stop()
    stack.redis.start()
    codes = [page.socket.close_code(timeout=30) for page in watchers]
    assert codes == [4503, 4503]
    erin, carol = Page(stack, cookies["erin"], 1), Page(stack, cookies["carol"], 0)
    shows([erin, carol], 2, stack)
    assert erin.seq > seq_before
    for page in (erin, carol):
        page.close()


def test_the_lobby_page_renders_each_rooms_count_and_presence_number_from_redis(stack):
    cookie = login_cookie(stack.http_url(""), "alice", "pw")
    page = Page(stack, cookie, 0)
    html = requests.get(stack.http_url("/chat/"), headers={"Cookie": cookie}, timeout=10).text
    assert f'data-room="{ROOM}" data-seq="{page.seq}"' in html
    page.close()
