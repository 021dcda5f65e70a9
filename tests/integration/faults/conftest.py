import json
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.integration.faults.clients import ChatMember, LiveblogReader
from tests.integration.faults.harness import FaultStack
from tools.processes import wait_until
from tools.site_stack import login_cookie

PEOPLE = ["alice", "bob", "carol", "dave"]


def start_fault_stack(workdir: Path, **kwargs) -> FaultStack:
    stack = FaultStack(workdir, **kwargs)
    try:
        stack.start()
    except Exception:
        print(stack.logs())
        stack.stop()
        raise
    return stack


def report(name: str, figures: dict, workdir: Path) -> None:
    """Prints a test's measured figures (docs/reliability.md quotes them) and keeps them as JSON."""
    (workdir / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"\nFIGURES {name}: {json.dumps(figures, sort_keys=True)}")


class Audience:
    """The pages open on a stack: liveblog readers and chat members spread over the daphnes,
    each reconnecting and catching up by itself."""

    def __init__(self, stack: FaultStack, *, slug: str, room: str, readers: int = 6, people: List[str] = PEOPLE):
        self.stack = stack
        self.slug = slug
        self.room = room
        bases = [f"ws://127.0.0.1:{port}" for port in stack.daphne_ports]
        rotated = lambda i: bases[i % len(bases) :] + bases[: i % len(bases)]  # noqa: E731
        self.readers = [LiveblogReader(f"reader-{i}", rotated(i), slug) for i in range(readers)]
        self.cookies = {name: login_cookie(stack.http_url(""), name, name * 2) for name in people}
        self.members = [
            ChatMember(name, rotated(i), [room], cookie=self.cookies[name]) for i, name in enumerate(people)
        ]
        # Saved items: id -> time.monotonic() the save returned.
        self.posts: Dict[int, float] = {}
        self.messages: Dict[int, float] = {}

    @property
    def clients(self):
        return [*self.readers, *self.members]

    def start(self) -> "Audience":
        for client in self.clients:
            client.start()
        self.wait_connected()
        return self

    def wait_connected(self, timeout: float = 30.0) -> None:
        wait_until(
            lambda: all(r.connected for r in self.readers) and all(m.in_rooms() for m in self.members),
            timeout=timeout,
            message="every page connected and in its rooms",
        )

    def stop(self) -> None:
        for client in self.clients:
            client.stop()

    def post(self, body: str) -> int:
        post_id = self.stack.driver("post", self.slug, body)
        self.posts[post_id] = time.monotonic()
        return post_id

    def save_message(self, username: str, text: str) -> int:
        """A chat message saved by the chat's service directly (as a worker would), not over a socket."""
        message_id = self.stack.driver("say", self.room, username, text)
        self.messages[message_id] = time.monotonic()
        return message_id

    def record_sent_messages(self, *, quiet: float = 1.5, timeout: float = 30.0) -> None:
        """Adds what the members sent over their sockets and the database kept, once the
        workers have saved the last of it (no new message for `quiet` seconds)."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            current = self.stack.driver("message_ids", self.room)
            if current == seen or time.monotonic() > deadline:
                break
            seen = current
            time.sleep(quiet)
        for message_id, _, _ in self.stack.driver("messages", self.room):
            if message_id not in self.messages:
                # Saved at some time the test did not see: count it as saved when first received.
                arrivals = [m.messages[message_id].at for m in self.members if message_id in m.messages]
                self.messages[message_id] = min(arrivals, default=time.monotonic())

    def everyone_has_everything(self) -> bool:
        return all(set(self.posts) <= set(r.posts) for r in self.readers) and all(
            set(self.messages) <= set(m.messages) for m in self.members
        )

    def wait_for_everything(self, timeout: float = 60.0) -> float:
        """Until every page has every saved post and message; returns how long that took."""
        started = time.monotonic()
        try:
            wait_until(self.everyone_has_everything, timeout=timeout, message="every page has every item")
        except TimeoutError:
            missing = {
                **{r.name: sorted(set(self.posts) - set(r.posts)) for r in self.readers},
                **{m.name: sorted(set(self.messages) - set(m.messages)) for m in self.members},
            }
            states = {
                client.name: {
                    "connections": [(c.number, c.close_code) for c in client.stats.connections],
                    "failed_attempts": client.stats.failed_attempts,
                    "errors": client.stats.errors[-5:],
                    "joined": getattr(client, "joined", None),
                    "connected": client.connected,
                }
                for client in self.clients
            }
            raise AssertionError(f"items never delivered: {missing}\n{states}\n{self.stack.logs(60)}")
        return time.monotonic() - started


@pytest.fixture
def audience_factory():
    made: List[Audience] = []

    def make(stack: FaultStack, **kwargs) -> Audience:
        audience = Audience(stack, **kwargs)
        made.append(audience)
        return audience.start()

    yield make
    for audience in made:
        audience.stop()


def seed(stack: FaultStack, *, slug: str, room: str, people: List[str] = PEOPLE) -> None:
    stack.driver("create_liveblog", slug)
    stack.driver("create_room", room)
    for name in people:
        stack.driver("create_user", name, name * 2)
