"""A worker and then a daphne are killed with SIGKILL mid-traffic, and started again as
supervisord's autorestart does.

Traffic: a post every 0.2 s and each chat member sending every 0.8 s, from pages that
reconnect and catch up by themselves. In the end every post and every chat message the
database holds has reached every page, live or by catch-up. The killed daphne sent no
disconnect for its sockets: the sweep (channels1_kit/sockets.py) removes their presence rows and
group memberships once that daphne's snapshot is gone.
"""

import threading
import time

import pytest

from tests.integration.faults.clients import delivery_report
from tests.integration.faults.conftest import report, seed, start_fault_stack
from tests.integration.faults.test_redis_outage import log_of
from tools.processes import wait_until

pytestmark = pytest.mark.integration

SLUG, ROOM = "crash", "crash-room"


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    stack = start_fault_stack(tmp_path_factory.mktemp("crashes"))
    seed(stack, slug=SLUG, room=ROOM)
    stack.supervise()
    yield stack
    stack.stop()


class Traffic(threading.Thread):
    """Posts and chat sends at a steady pace until stopped; counts what it tried."""

    def __init__(self, audience):
        super().__init__(name="traffic", daemon=True)
        self.audience = audience
        self.sent = {member.name: 0 for member in audience.members}
        self.refused = 0  # sends a page could not make: its socket was reconnecting
        self.halt = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.halt.wait(0.2):
            self.audience.post(f"post {tick}")
            member = self.audience.members[tick % len(self.audience.members)]
            if member.say(ROOM, f"{member.name} {tick}"):
                self.sent[member.name] += 1
            else:
                self.refused += 1
            tick += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def prefix_of(channel: str) -> str:
    return channel.split("!")[0] + "!"


def test_killing_a_worker_then_a_daphne_mid_traffic_loses_nothing_saved(crash_stack, audience_factory):
    stack = crash_stack
    audience = audience_factory(stack, slug=SLUG, room=ROOM)
    before_kill = set(stack.driver("daphnes"))
    assert len(before_kill) == 2, before_kill

    traffic = Traffic(audience)
    traffic.start()
    time.sleep(2)
    killed_worker = stack.kill("worker", 0)
    wait_until(lambda: stack.pids()["worker-0"] != killed_worker and stack.workers[0].alive(), timeout=10)
    time.sleep(3)
    # Which daphne process is daphne-0: the snapshot whose sockets change when it dies.
    killed_daphne_pid = stack.kill("daphne", 0)
    killed_at = time.monotonic()
    wait_until(lambda: stack.pids()["daphne-0"] != killed_daphne_pid and stack.healthz(0) == 200, timeout=20)
    time.sleep(3)
    traffic.stop()

    audience.wait_connected(timeout=60)
    audience.record_sent_messages()
    audience.wait_for_everything(timeout=90)

    saved_posts = stack.driver("post_ids", SLUG)
    assert sorted(audience.posts) == saved_posts
    saved_messages = stack.driver("message_ids", ROOM)
    assert sorted(audience.messages) == saved_messages
    posts = delivery_report(audience.readers, audience.posts, items="posts")
    messages = delivery_report(audience.members, audience.messages, items="messages")
    assert posts["missing"] == 0 and messages["missing"] == 0, (posts, messages)
    assert stack.all_alive()
    restarted = sorted(name for name, *_ in stack.supervisor.restarts)
    assert restarted == ["daphne-0", "worker-0"], stack.supervisor.restarts

    # The dead daphne is forgotten: no presence row, no group membership of its sockets.
    after = set(stack.driver("daphnes"))
    dead = wait_until(
        lambda: before_kill - set(stack.driver("daphnes")), timeout=20, message="the dead snapshot expired"
    )
    assert len(dead) == 1 and len(after | set(stack.driver("daphnes"))) >= 2, (before_kill, after)

    def nothing_left_of_the_dead() -> bool:
        channels = [
            *stack.driver("presence", ROOM),
            *stack.driver("lobby"),
            *stack.driver("room_members", ROOM),
            *stack.driver("liveblog_members", SLUG),
        ]
        return not {prefix_of(channel) for channel in channels} & dead

    wait_until(nothing_left_of_the_dead, timeout=30, message="the dead daphne's sockets swept")
    swept_after = time.monotonic() - killed_at
    # One presence row per member, each on a live socket.
    presence = stack.driver("presence", ROOM)
    assert len(presence) == len(audience.members), presence
    assert len(stack.driver("lobby")) == len(audience.members)
    assert len(stack.driver("liveblog_members", SLUG)) == len(audience.readers)
    sweeps = sum(log_of(worker).count("Swept gone sockets") for worker in stack.workers)
    assert sweeps >= 1

    frames_sent = sum(traffic.sent.values())
    report(
        "crashes",
        {
            "killed": ["worker-0", "daphne-0"],
            "restarts": [
                {"process": name, "down_seconds": round(down, 2)} for name, _, _, down in stack.supervisor.restarts
            ],
            "posts": posts,
            "messages": messages,
            "chat_frames_sent": frames_sent,
            "chat_frames_saved": len(saved_messages),
            "chat_frames_lost_unsaved": frames_sent - len(saved_messages),
            "chat_sends_refused_while_reconnecting": traffic.refused,
            "close_codes": {
                client.name: [c.close_code for c in client.stats.connections[:-1]] for client in audience.clients
            },
            "seconds_until_dead_daphne_swept": round(swept_after, 1),
        },
        stack.workdir,
    )
