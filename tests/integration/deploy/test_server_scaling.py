"""Scaling the workers on their own, under traffic: nothing lost, no socket closed.

While three chat members send 60 messages and 30 posts are published (bounded, paced over
the scaling), the operator starts the spare workers, restarts every running worker one at
a time with SIGTERM (sitectl restart-workers), and stops the spares again. At the end,
every message and post in the database reached every socket that stayed open, a liveblog
page that kept reconnecting with ?since caught up on all posts, and no socket was closed.
"""

import subprocess
import threading
import time
from typing import List

from tests.integration.clients import ChangeCursor
from tests.integration.deploy.traffic import CHAT, Listener, liveblog_stream, persisted, seed
from tools.processes import REPO, VENV_BIN
from tools.site_stack import login_cookie

ROOM = BLOG = "scaling"
SENDERS = {"alice": "alicealice", "bob": "bobbob", "carol": "carolcarol"}
MESSAGES = 60
POSTS = 30
# Paced so that the traffic spans the scaling (about 45 s on a busy 2-core machine).
MESSAGE_PACE = 0.7
POST_PACE = 1.4


def publish_posts_in_background(site) -> subprocess.Popen:
    """One process publishing POSTS posts through the ORM, as an editor in the admin would."""
    code = (
        "import time\n"
        "from liveblog import selectors, services\n"
        f"blog = selectors.liveblog_get(slug={BLOG!r})\n"
        f"for n in range({POSTS}):\n"
        "    services.post_create(liveblog=blog, body=f'post {n}')\n"
        f"    time.sleep({POST_PACE})\n"
    )
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=site.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def send_messages(members: List[Listener], names: List[str], sent: List[str]) -> None:
    for n in range(MESSAGES):
        text = f"{names[n % len(names)]} #{n}"
        members[n % len(members)].send({"command": "send", "room": ROOM, "message": text})
        sent.append(text)
        time.sleep(MESSAGE_PACE)


class ReconnectingPage:
    """A liveblog page whose socket drops every few seconds and reconnects with ?since, as the
    page's WebSocketBridge does; each connect is a websocket.connect that a worker handles."""

    def __init__(self, ws_base: str):
        self.ws_base = ws_base
        self.seen: List[int] = []
        self.cursor = ChangeCursor()
        self.connections = 0
        self.error = None

    def connect_for(self, seconds: float) -> None:
        page = Listener(self.ws_base + liveblog_stream(BLOG, since=self.cursor.value))
        self.connections += 1
        time.sleep(seconds)
        page.close()
        for frame in page.matching(lambda f: True):
            self.cursor.saw(frame)
        self.seen += [frame["post"]["id"] for frame in page.matching(lambda f: f.get("type") == "post.created")]

    def run(self, until: threading.Event) -> None:
        try:
            while not until.is_set():
                self.connect_for(4)
        except Exception as error:  # Reported by the test, not lost in a thread.
            self.error = error


def test_adding_removing_and_restarting_workers_under_traffic_loses_nothing(server, all_programs_running):
    site, deployment = server.site, server.deployment
    seed(site, rooms=[ROOM], liveblogs=[BLOG])
    members = [Listener(server.ws + CHAT, cookie=login_cookie(server.http, n, p)) for n, p in SENDERS.items()]
    readers = [Listener(server.ws + liveblog_stream(BLOG)) for _ in range(2)]
    reconnecting = ReconnectingPage(server.ws)
    traffic_done = threading.Event()
    sent: List[str] = []
    try:
        for member in members:
            member.send({"command": "join", "room": ROOM})
            member.wait_for(lambda frame: frame.get("join") == ROOM)
        daphnes_before = deployment.pids([name for name in deployment.expected_running() if name.startswith("daphne")])
        workers_before = deployment.pids([name for name in deployment.expected_running() if name.startswith("worker")])

        poster = publish_posts_in_background(site)
        sender = threading.Thread(target=send_messages, args=(members, list(SENDERS), sent), daemon=True)
        page = threading.Thread(target=reconnecting.run, args=(traffic_done,), daemon=True)
        sender.start()
        page.start()

        # Scale up, restart everything that runs one by one, scale down: all while traffic flows.
        deployment.ctl("start", "worker-spare:*")
        assert all(deployment.status()[name] == "RUNNING" for name in deployment.spare_names())
        deployment.ctl("restart-workers", timeout=300)
        deployment.ctl("stop", "worker-spare:*")

        sender.join(MESSAGES * MESSAGE_PACE + 60)
        assert not sender.is_alive(), "the sender should have finished"
        output, _ = poster.communicate(timeout=POSTS * POST_PACE + 60)
        assert poster.returncode == 0, output
        traffic_done.set()
        page.join(30)
        assert reconnecting.error is None, reconnecting.error
        # The page comes back once more after the last post, and catches up.
        reconnecting.connect_for(3)

        stored = persisted(site, liveblog=BLOG, room=ROOM)
        assert sorted(text for _, text in stored["messages"]) == sorted(sent), "every message sent was stored"
        assert len(stored["posts"]) == POSTS
        message_ids = {message_id for message_id, _ in stored["messages"]}

        deadline = time.monotonic() + 30
        for member in members:
            while True:
                got = [frame["id"] for frame in member.matching(lambda f: f.get("type") == "message")]
                if set(got) >= message_ids or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert sorted(got) == sorted(message_ids), "each stored message reached each member once"
        for reader in readers:
            while True:
                got = [frame["post"]["id"] for frame in reader.matching(lambda f: f.get("type") == "post.created")]
                if set(got) >= set(stored["posts"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert sorted(got) == stored["posts"]
        assert set(reconnecting.seen) == set(stored["posts"])
        assert reconnecting.connections >= 5, "the page reconnected throughout the scaling"

        assert [listener.closed for listener in members + readers] == [None] * (len(members) + len(readers))
        # Every worker was replaced; the daphnes holding the sockets never were.
        workers_after = deployment.pids(list(workers_before))
        assert all(workers_after[name] != pid for name, pid in workers_before.items()), (workers_before, workers_after)
        assert deployment.pids(list(daphnes_before)) == daphnes_before
        assert "Listening on channels" in (deployment.var / "log" / "worker-spare-0.log").read_text()
    finally:
        traffic_done.set()
        for listener in members + readers:
            listener.close()
