"""Publishing in the admin while every chat page reconnects and re-joins its room (issue 12, item 2).

Once, publishing a liveblog post answered HTTP 500 ("database is locked") while pages
reconnected and re-joined their chat rooms after a Redis restart: each re-join and each
disconnect was a write transaction (a Presence row) on the workers, and gunicorn's admin
request one more writer on the same SQLite file. SQLite now runs in WAL with immediate
transactions and a 30 s busy timeout (project/settings/base.py), so a writer waits for the
lock instead of failing; and presence is now in Redis (channels1_kit/presence.py), so joins
and disconnects write nothing to the database. The storm stays, as the guard of both.

Here, on the real processes and SQLite as `make run` uses: 40 chat sockets over both
daphnes join a room, then each of them closes and reopens, re-joining every time, for at
least STORM_SECONDS, while an editor publishes POSTS posts through the admin's add form.
Every publish must answer the admin's success redirect, every post must be in the database,
and every post must reach a liveblog stream that stayed open (live) and one that connects
with since=0 after the storm (catch-up).
"""

import random
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional

import pytest
import websocket

from tests.integration.clients import Socket
from tests.integration.faults.conftest import report, start_fault_stack
from tests.integration.faults.harness import AdminSession
from tools.processes import wait_until
from tools.site_stack import login_cookie

pytestmark = pytest.mark.integration

SLUG, ROOM = "storm", "storm-room"
PEOPLE = ["alice", "bob", "carol", "dave"]
SOCKETS = 40
POSTS = 20
STORM_SECONDS = 15
# The storm goes on until the last publish has answered, but never longer than this.
STORM_MAX_SECONDS = 90
JOIN_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def storm_stack(tmp_path_factory):
    stack = start_fault_stack(tmp_path_factory.mktemp("publish-storm"))
    stack.driver("create_liveblog", SLUG)
    stack.driver("create_room", ROOM)
    for name in PEOPLE:
        stack.driver("create_user", name, name * 2)
    stack.driver("create_user", "editor", "editoreditor", staff=True, publisher=True)
    yield stack
    stack.stop()


@dataclass
class Slot:
    """One chat page: a socket that joins ROOM, then during the storm closes, reopens and re-joins."""

    number: int
    cookie: str
    joins: int = 0
    # Opening handshakes that failed (seen once as a connection reset, with the machine loaded
    # by another test run): the page tries again, and so does this.
    refused: List[str] = field(default_factory=list)
    # Joins sent on an open socket and not answered with the join reply: must stay empty.
    failures: List[str] = field(default_factory=list)


class Storm:
    def __init__(self, stack, cookies: List[str]):
        self.stack = stack
        self.slots = [Slot(i, cookies[i % len(cookies)]) for i in range(SOCKETS)]
        self.joined_once = threading.Semaphore(0)
        self.go = threading.Event()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(slot,), daemon=True) for slot in self.slots]

    def _join(self, slot: Slot, daphne: int, hold) -> bool:
        opened = time.monotonic()
        try:
            socket = Socket(self.stack.ws_url("/chat/stream/", daphne), cookie=slot.cookie, timeout=10)
        except Exception as error:
            slot.refused.append(f"daphne-{daphne} after {time.monotonic() - opened:.1f}s: {error!r}")
            self.halt.wait(0.5)
            return False
        try:
            socket.send({"command": "join", "room": ROOM})
            reply = socket.recv_until(lambda frame: "join" in frame or "error" in frame, timeout=JOIN_TIMEOUT)
            if reply.get("join") != ROOM:
                slot.failures.append(f"join answered {reply}")
                return False
            slot.joins += 1
            hold()
            return True
        except Exception as error:
            slot.failures.append(f"join on daphne-{daphne}: {error!r}")
            return False
        finally:
            try:
                socket.close()
            except Exception:
                pass

    def _run(self, slot: Slot) -> None:
        daphnes = len(self.stack.daphne_ports)
        daphne = slot.number % daphnes

        def until_the_storm() -> None:
            # The first connection stays in the room until the storm begins: all of them at once.
            self.joined_once.release()
            self.go.wait(90)

        deadline = time.monotonic() + 60
        while not self._join(slot, daphne, until_the_storm):
            daphne = (daphne + 1) % daphnes
            if slot.failures or time.monotonic() > deadline:
                self.joined_once.release()  # start() then fails on the count of joins
                return
        while not self.halt.is_set():
            # Like a load balancer, each reconnect may land on the other daphne.
            daphne = (daphne + 1) % daphnes
            self._join(slot, daphne, lambda: time.sleep(random.uniform(0, 0.3)))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        for _ in self.slots:
            assert self.joined_once.acquire(timeout=90), "the chat sockets did not all join in time"

    def stop(self) -> None:
        self.halt.set()
        self.go.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT + 15)


class StreamReader(threading.Thread):
    """A liveblog stream that stays open: keeps the id of every post.created it receives."""

    def __init__(self, socket: Socket):
        super().__init__(daemon=True)
        self.socket = socket
        self.posts: set = set()
        self.closed: Optional[str] = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                frame = self.socket.recv(timeout=0.5)
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as error:
                self.closed = repr(error)
                return
            if frame.get("type") == "post.created":
                self.posts.add(frame["post"]["id"])

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.socket.close()


def stream_posts(stack, *, since: int, expected: set, timeout: float = 30.0) -> set:
    """The post ids a stream opened now with ?since= gets, until it has `expected` (or timeout)."""
    socket = Socket(stack.ws_url(f"/liveblog/{SLUG}/stream/?since={since}", 1), timeout=10)
    got = set()
    deadline = time.monotonic() + timeout
    try:
        while not expected <= got and time.monotonic() < deadline:
            try:
                frame = socket.recv_until(lambda f: f.get("type") == "post.created", timeout=2)
            except TimeoutError:
                continue
            got.add(frame["post"]["id"])
    finally:
        socket.close()
    return got


def errors_logged(process, text: str) -> List[str]:
    return [line for line in process.log_path.read_text(errors="replace").splitlines() if text in line]


def test_admin_publishes_while_every_chat_page_reconnects_and_rejoins(storm_stack):
    stack = storm_stack
    cookies = [login_cookie(stack.http_url(""), name, name * 2) for name in PEOPLE]
    editor = AdminSession(stack, "editor", "editoreditor")
    liveblog_id = stack.driver("liveblog_id", SLUG)

    live = StreamReader(Socket(stack.ws_url(f"/liveblog/{SLUG}/stream/?since=0", 0), timeout=10))
    live.start()
    wait_until(lambda: len(stack.driver("liveblog_members", SLUG)) >= 1, timeout=20, message="the stream in its group")

    storm = Storm(stack, cookies)
    storm.start()
    assert all(slot.joins == 1 for slot in storm.slots), [
        (s.number, s.refused, s.failures) for s in storm.slots if s.joins != 1
    ]
    wait_until(
        lambda: len(stack.driver("presence", ROOM)) == SOCKETS, timeout=30, message="every chat socket in the room"
    )

    # The storm: every socket closes, reopens and re-joins, again and again, while the
    # editor publishes, one post about every STORM_SECONDS / POSTS seconds.
    responses = []
    started = time.monotonic()
    storm.go.set()
    try:
        for n in range(POSTS):
            if time.monotonic() - started > STORM_MAX_SECONDS:
                break
            body = f"published during the storm {n}"
            sent = time.monotonic()
            try:
                response = editor.add_post(liveblog_id, body)
                responses.append((body, response.status_code, response.headers.get("Location", ""), response.text))
            except Exception as error:
                responses.append((body, None, "", repr(error)))
            took = time.monotonic() - sent
            time.sleep(max(0.0, STORM_SECONDS / POSTS - took))
        published = time.monotonic() - started
        while time.monotonic() - started < STORM_SECONDS:
            time.sleep(0.1)
    finally:
        storm.stop()
    storm_seconds = time.monotonic() - started
    assert storm_seconds < STORM_MAX_SECONDS + JOIN_TIMEOUT + 15

    assert len(responses) == POSTS, f"{len(responses)} of {POSTS} publishes in {STORM_MAX_SECONDS}s"
    # No 500: every publish answered the admin's redirect to the post list.
    failed = [(body, status) for body, status, _, _ in responses if status != 302]
    assert not failed, (
        f"{len(failed)} of {POSTS} publishes failed: {failed}\n"
        + "\n".join(errors_logged(stack.gunicorn, "Error")[-10:])
        + f"\nfirst failed response: {next(text for _, status, _, text in responses if status != 302)[:1500]}"
    )
    assert all(location.endswith("/admin/liveblog/post/") for _, _, location, _ in responses), responses

    # The storm was one: every socket re-joined the room several times, and every join was answered.
    rejoins = sum(slot.joins - 1 for slot in storm.slots)
    failures = {slot.number: slot.failures for slot in storm.slots if slot.failures}
    assert not failures, failures
    assert min(slot.joins for slot in storm.slots) >= 3, [slot.joins for slot in storm.slots]

    # Every post is saved, once.
    bodies = stack.driver("post_bodies", SLUG)
    saved = {int(post_id) for post_id, body in bodies.items() if body.startswith("published during the storm ")}
    assert sorted(bodies.values()) == sorted(body for body, *_ in responses)
    assert len(saved) == POSTS

    # Delivered: live to the stream that stayed open, and to a page that connects now with since=0.
    try:
        wait_until(lambda: saved <= live.posts, timeout=30, message="every post on the open stream")
    except TimeoutError:
        missed = sorted(saved - live.posts)
        raise AssertionError(f"the open stream missed {missed}; its socket: {live.closed}") from None
    finally:
        live.stop()
    assert live.closed is None, live.closed
    caught_up = stream_posts(stack, since=0, expected=saved)
    assert saved <= caught_up, sorted(saved - caught_up)

    # Nothing failed on the lock, and no process died.
    assert stack.all_alive(), stack.logs()
    for process in [*stack.workers, stack.gunicorn]:
        assert not errors_logged(process, "database is locked"), process.tail(60)

    report(
        "publish_under_storm",
        {
            "chat_sockets": SOCKETS,
            "posts": POSTS,
            "storm_seconds": round(storm_seconds, 1),
            "publishing_seconds": round(published, 1),
            "rejoins": rejoins,
            "handshakes_refused_and_retried": sum(len(slot.refused) for slot in storm.slots),
            "refused_examples": [refused for slot in storm.slots for refused in slot.refused][:5],
            "joins_per_socket": {
                "min": min(slot.joins for slot in storm.slots),
                "max": max(slot.joins for slot in storm.slots),
            },
            "admin_statuses": sorted({status for _, status, _, _ in responses}),
        },
        stack.workdir,
    )
