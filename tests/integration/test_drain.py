"""A daphne stopped with SIGTERM drains: it stops listening, closes its sockets in slices over its
window, each told when to come back (server.restarting, retry_after, 4012), and exits; the pages
come back on the other daphne when told and miss nothing published meanwhile."""

import json
import select
import signal
import socket
import time

import pytest
import websocket

from tests.integration.clients import close_code_of, next_frame
from tests.integration.conftest import running
from tools.processes import wait_until
from tools.site_stack import Stack

pytestmark = pytest.mark.integration

WINDOW = 6
PAGES = 60


@pytest.fixture
def stack(tmp_path):
    stack = Stack(
        tmp_path,
        daphnes=2,
        workers=2,
        settings={
            "DAPHNE_DRAIN_SECONDS": str(WINDOW),
            # One address opens every page here: the test is of the drain, not of the client budgets.
            "WEBSOCKET_HANDSHAKE_RATE": "0",
            "WEBSOCKET_CLIENT_SOCKETS": "0",
        },
    )
    yield from running(stack)


def publish(stack: Stack, body: str) -> int:
    return stack.django(
        "import json\nfrom liveblog.models import Liveblog\nfrom liveblog.services import post_create\n"
        f"post = post_create(liveblog=Liveblog.objects.get(slug='drain'), body={body!r})\n"
        "print(json.dumps(post.seq))"
    )


class Page:
    """A liveblog page: its socket, the change numbers it has seen, and what its daphne told it."""

    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, timeout=10)
        self.seen: set = set()
        self.told = None
        self.closed_at = None
        self.close_code = None

    def read(self) -> None:
        """Takes one frame that is waiting (select said so)."""
        opcode, data = next_frame(self.ws)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = json.loads(data)
            if "seq" in frame and frame.get("type", "").startswith("post."):
                self.seen.add(frame["seq"])
            elif frame.get("type") == "server.restarting":
                self.told = frame
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            self.closed_at = time.monotonic()
            self.close_code = close_code_of(data)
            self.ws.shutdown()


def read_until(pages, done, *, timeout: float) -> None:
    """Reads whatever the pages' daphne sends, as it comes, until done() (the one wait helper)."""

    def step():
        open_pages = {page.ws.sock.fileno(): page for page in pages if page.closed_at is None and page.ws.sock}
        if open_pages:
            readable, _, _ = select.select(list(open_pages), [], [], 0.05)
            for fileno in readable:
                open_pages[fileno].read()
        return done()

    wait_until(step, timeout=timeout, interval=0.0, message="the pages' frames")


def test_sigterm_drains_the_daphne_in_slices_and_the_pages_come_back_on_the_other_without_missing_a_post(stack):
    stack.django("from liveblog.services import liveblog_create\nliveblog_create(title='Drain', slug='drain')")
    first = publish(stack, "before the restart")
    pages = [Page(stack.ws_url(f"/liveblog/drain/stream/?since={first}", 0)) for _ in range(PAGES)]
    daphne, port = stack.daphnes[0], stack.daphne_ports[0]
    wait_until(
        lambda: stack.django(
            "import json\nfrom channels1_kit.conf import channel_layer\nfrom liveblog.models import Liveblog\n"
            "layer = channel_layer()\ngroup = Liveblog.objects.get(slug='drain').group_name\n"
            "print(json.dumps(layer.connection(layer.consistent_hash(group)).zcard(layer._group_key(group))))"
        )
        == PAGES,
        timeout=30,
        message="every page in the liveblog's group",
    )

    stopped_at = time.monotonic()
    daphne.send_signal(signal.SIGTERM)

    # It stops listening at once, while its sockets are still being closed.
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_until(refused, timeout=5, interval=0.05, message="daphne-0 stops listening")
    during = publish(stack, "published during the drain")
    read_until(pages, lambda: all(page.closed_at for page in pages), timeout=WINDOW + 10)

    assert {page.close_code for page in pages} == {4012}
    assert all(page.told and 1 <= page.told["retry_after"] <= 5 for page in pages)
    closes = sorted(page.closed_at - stopped_at for page in pages)
    # In slices over the window: not all at once, none after it.
    assert closes[-1] - closes[0] >= WINDOW * 0.7, closes
    assert sum(1 for at in closes if at < closes[0] + WINDOW / 2) <= PAGES * 0.7, closes
    assert closes[-1] <= WINDOW + 3, closes
    wait_until(lambda: not daphne.alive(), timeout=10, message="daphne-0 exits after its drain")
    assert "Stopping: closing 60 socket(s)" in daphne.tail(200)

    # Each page comes back on the other daphne from the last change it saw, and has every post.
    returned = []
    for page in pages:
        since = max(page.seen | {first})
        returned.append(Page(stack.ws_url(f"/liveblog/drain/stream/?since={since}", 1)))
        returned[-1].seen |= page.seen
    read_until(returned, lambda: all(during in page.seen for page in returned), timeout=30)
    for page in returned:
        page.ws.close()
