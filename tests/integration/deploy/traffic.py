"""The liveblog and the chat driven the way browsers drive them, against any deployment.

A deployment is reached through a base HTTP URL (login page) and base WebSocket URLs; the
data a test needs is made through the ORM of the deployment (Site.django), as the admin
and the other processes would make it.
"""

import json
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import websocket

from tests.integration.clients import Socket
from tests.integration.deploy.servers import Site
from tools.site_stack import login_cookie

CHAT = "/chat/stream/"


def liveblog_stream(slug: str, since: Optional[int] = None) -> str:
    return f"/liveblog/{slug}/stream/" + (f"?since={since}" if since is not None else "")


def seed(site: Site, *, users: Iterable[str] = (), rooms: Iterable[str] = (), liveblogs: Iterable[str] = ()) -> None:
    """Users (password: the name twice), chat rooms and liveblogs, each named by its slug."""
    spec = json.dumps({"users": list(users), "rooms": list(rooms), "liveblogs": list(liveblogs)})
    site.django(
        "import json\n"
        "from django.contrib.auth.models import User\n"
        "from chat import services as chat\n"
        "from liveblog import services as liveblog\n"
        f"spec = json.loads({spec!r})\n"
        "for name in spec['users']:\n"
        "    User.objects.create_user(name, password=name * 2)\n"
        "for slug in spec['rooms']:\n"
        "    chat.room_create(title=slug.title(), slug=slug)\n"
        "for slug in spec['liveblogs']:\n"
        "    liveblog.liveblog_create(title=slug.title(), slug=slug)\n"
        "print(json.dumps('ok'))\n"
    )


def publish(site: Site, slug: str, body: str) -> int:
    """A post published through the ORM, as the admin does; returns its id."""
    return site.django(
        "import json\n"
        "from liveblog import selectors, services\n"
        f"post = services.post_create(liveblog=selectors.liveblog_get(slug={slug!r}), body={body!r})\n"
        "print(json.dumps(post.id))\n"
    )


def persisted(site: Site, *, liveblog: str, room: str) -> Dict[str, List]:
    """Ids of the liveblog's posts and (id, text) of the room's messages, from the database."""
    return site.django(
        "import json\n"
        "from chat.models import Message\n"
        "from liveblog.models import Post\n"
        f"posts = list(Post.objects.filter(liveblog__slug={liveblog!r}).order_by('id').values_list('id', flat=True))\n"
        f"messages = list(Message.objects.filter(room__slug={room!r}).order_by('id').values_list('id', 'text'))\n"
        "print(json.dumps({'posts': posts, 'messages': messages}))\n"
    )


def is_post(post_id: int) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "post.created" and frame["post"]["id"] == post_id


def is_message(text: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("type") == "message" and frame.get("message") == text


def check_liveblog(site: Site, slug: str, ws_bases: Sequence[str], *, per_base: int = 2) -> None:
    """A post published through the ORM reaches every open stream, on every interface server given."""
    sockets = [Socket(base + liveblog_stream(slug)) for base in ws_bases for _ in range(per_base)]
    try:
        post_id = publish(site, slug, f"deployed {time.monotonic()}")
        for sock in sockets:
            assert sock.recv_until(is_post(post_id), timeout=20)["post"]["id"] == post_id
    finally:
        for sock in sockets:
            sock.close()


def check_chat(http_base: str, ws_bases: Sequence[str], room: str, users: Dict[str, str]) -> None:
    """Each user logs in on the login page, joins the room over the n-th interface server, and
    every message sent reaches every member, its sender included."""
    sockets = {}
    try:
        for n, (name, password) in enumerate(users.items()):
            cookie = login_cookie(http_base, name, password)
            sockets[name] = Socket(ws_bases[n % len(ws_bases)] + CHAT, cookie=cookie)
        for sock in sockets.values():
            sock.send({"command": "join", "room": room})
            assert sock.recv_until(lambda frame: frame.get("join") == room, timeout=20)
        for name, sock in sockets.items():
            text = f"{name} says hello at {time.monotonic()}"
            sock.send({"command": "send", "room": room, "message": text})
            for receiver in sockets.values():
                frame = receiver.recv_until(is_message(text), timeout=20)
                assert frame["username"] == name
    finally:
        for sock in sockets.values():
            sock.close()


class Listener:
    """A WebSocket whose frames a thread of its own reads all along, as a browser tab does.

    Reading all along answers daphne's pings, which a socket left unread for longer than
    daphne's ping timeout would miss; `closed` says whether the socket was closed under it.
    """

    def __init__(self, url: str, *, cookie: Optional[str] = None):
        headers = [f"Cookie: {cookie}"] if cookie else []
        self.ws = websocket.create_connection(url, timeout=10, header=headers)
        self.frames: List[dict] = []
        self.closed: Optional[str] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.ws.settimeout(0.5)
        while not self._stop.is_set():
            try:
                text = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as error:  # Closed, reset: all the same to a tab.
                if not self._stop.is_set():
                    self.closed = f"{type(error).__name__}: {error}"
                return
            if not text:
                if not self._stop.is_set():
                    self.closed = "close frame"
                return
            with self._lock:
                self.frames.append(json.loads(text))

    def send(self, payload: dict) -> None:
        self.ws.send(json.dumps(payload))

    def matching(self, predicate: Callable[[dict], bool]) -> List[dict]:
        with self._lock:
            return [frame for frame in self.frames if predicate(frame)]

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(predicate)
            if found:
                return found[0]
            time.sleep(0.05)
        raise TimeoutError(f"no matching frame within {timeout}s; last frames: {self.frames[-5:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ws.close()
