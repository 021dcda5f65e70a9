"""Redis stops for 10 s with pages open, and comes back empty on the same port.

Before, during and after the outage, posts are published and chat messages saved; every
one of them must reach every page in the end, whether live or by the pages' own catch-up
after their reconnect. No process may die (no process manager restarts anything here):
the workers wait Redis out (channels1_kit/outages.py), daphne answers 503 meanwhile and closes
its sockets once Redis is back (channels1_kit/interface.py), and the saves that happen during
the outage succeed with their broadcast logged as failed (channels1_kit/websocket.py).
"""

import time

import pytest

from tests.integration.faults.clients import delivery_report
from tests.integration.faults.conftest import report, seed, start_fault_stack
from tests.integration.faults.harness import AdminSession
from tools.processes import Process, wait_until

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10
SLUG, ROOM = "outage", "outage-room"


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory):
    stack = start_fault_stack(tmp_path_factory.mktemp("redis-outage"))
    seed(stack, slug=SLUG, room=ROOM)
    stack.driver("create_user", "editor", "editoreditor", staff=True, publisher=True)
    yield stack
    stack.stop()


def log_of(process: Process) -> str:
    return process.log_path.read_text(errors="replace")


def test_a_redis_outage_loses_nothing_and_every_process_recovers_by_itself(outage_stack, audience_factory):
    stack = outage_stack
    audience = audience_factory(stack, slug=SLUG, room=ROOM)
    editor = AdminSession(stack, "editor", "editoreditor")
    liveblog_id = stack.driver("liveblog_id", SLUG)
    pids = stack.pids()

    # Before: everything live.
    for n in range(3):
        audience.post(f"before {n}")
    for member in audience.members:
        assert member.say(ROOM, f"{member.name}: before")
    wait_until(lambda: len(stack.driver("message_ids", ROOM)) == len(audience.members), timeout=20)
    audience.record_sent_messages()
    audience.wait_for_everything(timeout=30)
    before = {"posts": dict(audience.posts), "messages": dict(audience.messages)}

    # During: Redis is gone. Saves go on; their broadcasts fail and are logged.
    during = {"posts": 0, "messages": 0, "socket_sends_tried": 0, "healthz": set()}
    with stack.redis_down() as outage:
        n = 0
        while time.monotonic() - outage["stopped"] < OUTAGE_SECONDS:
            audience.post(f"during {n}")
            during["posts"] += 1
            if n % 2 == 0:
                audience.save_message(audience.members[n // 2 % len(audience.members)].name, f"during {n}")
                during["messages"] += 1
            # A page that sends meanwhile: daphne cannot queue the frame and closes the socket (1013).
            during["socket_sends_tried"] += audience.members[n % len(audience.members)].say(ROOM, f"lost {n}")
            during["healthz"].add(stack.healthz(n % 2, timeout=5))
            n += 1
            time.sleep(0.5)
        # The admin publishes too: the request succeeds, the post is saved.
        response = editor.add_post(liveblog_id, "published in the admin during the outage")
        assert response.status_code == 302, response.text[:2000]
        assert stack.all_alive(), stack.logs()
    admin_post = [
        int(post_id)
        for post_id, body in stack.driver("post_bodies", SLUG).items()
        if body == "published in the admin during the outage"
    ]
    assert len(admin_post) == 1
    audience.posts[admin_post[0]] = outage["started"]

    # After: one more post; how long until every page has everything is the recovery time.
    audience.post("after the restart")
    audience.wait_for_everything(timeout=60)
    recovered_at = time.monotonic()
    audience.wait_connected()
    for member in audience.members:
        assert member.say(ROOM, f"{member.name}: after")
    wait_until(
        lambda: len(stack.driver("message_ids", ROOM)) == len(before["messages"]) + during["messages"] + 4,
        timeout=20,
        message="the messages sent after the outage saved",
    )
    audience.record_sent_messages()
    audience.wait_for_everything(timeout=30)

    # Nothing was lost: every saved item reached every page.
    saved_posts = stack.driver("post_ids", SLUG)
    assert sorted(audience.posts) == saved_posts
    assert len(saved_posts) == 3 + during["posts"] + 1 + 1
    posts = delivery_report(audience.readers, audience.posts, items="posts")
    messages = delivery_report(audience.members, audience.messages, items="messages")
    assert posts["missing"] == 0 and messages["missing"] == 0, (posts, messages)
    # The frames the pages tried to send during the outage were refused, not half-saved.
    texts = [text for _, _, text in stack.driver("messages", ROOM)]
    assert not [text for text in texts if text.startswith("lost ")]

    # No process died or was restarted; each one says it waited and came back.
    assert stack.pids() == pids
    assert stack.all_alive()
    for worker in stack.workers:
        assert "Redis reachable again" in log_of(worker)
    for daphne in stack.daphnes:
        assert "Redis restarted and lost every group membership" in log_of(daphne)
    # daphne answered 503 while Redis was away (never hung), and serves again.
    assert during["healthz"] <= {503}, during["healthz"]
    assert [stack.healthz(i) for i in range(len(stack.daphnes))] == [200] * len(stack.daphnes)
    # Every page was closed by daphne so that it reconnects, and did: 1013 ("try again
    # later") for one whose frame could not be queued, 4503 for the others once Redis was back.
    close_codes = {client.name: [c.close_code for c in client.stats.connections[:-1]] for client in audience.clients}
    for client in audience.clients:
        assert close_codes[client.name] and set(close_codes[client.name]) <= {1013, 4503}, close_codes
        assert client.connected
    assert all(codes == [4503] for name, codes in close_codes.items() if name.startswith("reader")), close_codes

    # Presence is right again: Redis came back empty, presence with it, and each page's rejoin
    # counts its one live socket (the sweep takes out any socket closed meanwhile).
    live_sockets = len(audience.members)
    wait_until(lambda: len(stack.driver("presence", ROOM)) == live_sockets, timeout=20, message="presence swept")
    wait_until(lambda: len(stack.driver("lobby")) == live_sockets, timeout=20, message="lobby swept")

    first_reconnects = [
        min(c.opened for c in client.stats.connections[1:]) - outage["started"] for client in audience.clients
    ]
    report(
        "redis_outage",
        {
            "outage_seconds": round(outage["started"] - outage["stopped"], 1),
            "saved_before": {"posts": len(before["posts"]), "messages": len(before["messages"])},
            "saved_during": {"posts": during["posts"] + 1, "messages": during["messages"]},
            "pages": {"liveblog": len(audience.readers), "chat": len(audience.members)},
            "recovery_seconds_until_every_page_has_every_item": round(recovered_at - outage["started"], 2),
            "reconnect_seconds_after_redis_start": {
                "first": round(min(first_reconnects), 2),
                "last": round(max(first_reconnects), 2),
            },
            "posts": posts,
            "messages": messages,
            "frames_sent_during_outage_and_refused": during["socket_sends_tried"],
            "close_codes": close_codes,
            "healthz_during_outage": sorted(during["healthz"]),
            "process_restarts": 0,
        },
        stack.workdir,
    )
