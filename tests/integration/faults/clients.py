"""Clients that behave like the pages: they reconnect by themselves and catch up.

The pages use channels' WebSocketBridge (ReconnectingWebSocket underneath): after any
close it reconnects, waiting 1.5-3 s at first, then 1.3 times longer each try, at most
10 s, and starts over after a connection that opened. On each new connection the
liveblog page asks for the posts after the newest it has (`?since=`) and the chat page
joins its rooms again with `since` = the newest message it has. These threads do the
same, over real sockets, and record what arrived, live or caught up, on which connection.
"""

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import websocket

from tests.integration.clients import ChangeCursor

# ReconnectingWebSocket's defaults in channels' websocketbridge.js.
MIN_DELAY = 1.5
GROW = 1.3
MAX_DELAY = 10.0
CONNECT_TIMEOUT = 4.0


@dataclass
class Connection:
    number: int
    opened: float
    closed: Optional[float] = None
    close_code: Optional[int] = None


@dataclass
class Arrival:
    """One item (post or chat message) as a client got it."""

    connection: int
    at: float
    live: bool  # False when it came in a catch-up (a replay on connect, a join reply)


@dataclass
class Stats:
    connections: List[Connection] = field(default_factory=list)
    failed_attempts: int = 0
    frames: int = 0
    errors: List[dict] = field(default_factory=list)


class ReconnectingClient(threading.Thread):
    """One page: a socket that is reopened whenever it closes, until stop()."""

    def __init__(self, name: str, urls: Callable[[int], str], *, cookie: Optional[str] = None, origin: str = ""):
        super().__init__(name=name, daemon=True)
        self.urls = urls
        self.cookie = cookie
        self.origin = origin
        self.stats = Stats()
        self.lock = threading.Lock()
        self.ws: Optional[websocket.WebSocket] = None
        self._halt = threading.Event()
        self._attempt = 0

    # Subclasses: what to do on open, and with each frame.
    def opened(self, ws: websocket.WebSocket) -> None:
        pass

    def received(self, frame: dict, connection: int) -> None:
        pass

    @property
    def connected(self) -> bool:
        ws = self.ws
        return ws is not None and ws.connected

    def run(self) -> None:
        delay = MIN_DELAY * (1 + random.random())
        while not self._halt.is_set():
            url = self.urls(self._attempt)
            self._attempt += 1
            headers = [f"Cookie: {self.cookie}"] if self.cookie else []
            try:
                ws = websocket.create_connection(
                    url, timeout=CONNECT_TIMEOUT, header=headers, origin=self.origin or None
                )
            except Exception:
                self.stats.failed_attempts += 1
                if self._halt.wait(delay):
                    return
                delay = min(delay * GROW, MAX_DELAY)
                continue
            delay = MIN_DELAY * (1 + random.random())
            connection = Connection(number=len(self.stats.connections), opened=time.monotonic())
            with self.lock:
                self.stats.connections.append(connection)
                self.ws = ws
            try:
                self.opened(ws)
                self._read(ws, connection)
            except Exception:
                pass
            finally:
                connection.closed = time.monotonic()
                with self.lock:
                    self.ws = None
                try:
                    ws.close(timeout=0.5)
                except Exception:
                    pass
            if self._halt.wait(delay):
                return

    def _read(self, ws: websocket.WebSocket, connection: Connection) -> None:
        ws.settimeout(0.5)
        while not self._halt.is_set():
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                connection.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                frame = json.loads(data.decode("utf8"))
                self.stats.frames += 1
                if "error" in frame:
                    self.stats.errors.append(frame)
                self.received(frame, connection.number)
            if not ws.connected:
                return

    def send(self, payload: dict) -> bool:
        """Sends a frame if the socket is open now; False if it is not (the page says so too)."""
        with self.lock:
            ws = self.ws
            if ws is None or not ws.connected:
                return False
            try:
                ws.send(json.dumps(payload))
            except Exception:
                return False
            return True

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class LiveblogReader(ReconnectingClient):
    """A liveblog page: ?since=<the change it has seen everything up to> on every connection."""

    def __init__(self, name: str, base_urls: List[str], slug: str, **kwargs):
        self.base_urls = base_urls
        self.slug = slug
        self.posts: Dict[int, Arrival] = {}
        self.bodies: Dict[int, str] = {}
        self.deleted: set = set()
        self.cursor = ChangeCursor()
        # Posts of a connection that were saved before it opened came as its catch-up.
        super().__init__(name, self._url, **kwargs)

    def _url(self, attempt: int) -> str:
        # Like a load balancer, a reconnect may land on another daphne.
        base = self.base_urls[attempt % len(self.base_urls)]
        return f"{base}/liveblog/{self.slug}/stream/?since={self.newest}"

    @property
    def newest(self) -> int:
        with self.lock:
            return self.cursor.value

    def received(self, frame: dict, connection: int) -> None:
        with self.lock:
            self.cursor.saw(frame)
        kind = frame.get("type")
        if kind in ("post.created", "post.updated"):
            post = frame["post"]
            with self.lock:
                if post["id"] not in self.posts:
                    self.posts[post["id"]] = Arrival(connection=connection, at=time.monotonic(), live=True)
                self.bodies[post["id"]] = post["body"]
        elif kind == "post.deleted":
            self.deleted.add(frame["post"]["id"])


class ChatMember(ReconnectingClient):
    """A chat page with some rooms joined: it joins them again with since on every connection."""

    def __init__(self, name: str, base_urls: List[str], rooms: List[str], **kwargs):
        self.base_urls = base_urls
        self.rooms = list(rooms)
        self.messages: Dict[int, Arrival] = {}
        self.texts: Dict[int, str] = {}
        self.joined: Dict[str, int] = {}  # room -> connection number of its latest join reply
        super().__init__(name, self._url, **kwargs)

    def _url(self, attempt: int) -> str:
        return f"{self.base_urls[attempt % len(self.base_urls)]}/chat/stream/"

    @property
    def newest(self) -> int:
        return max(self.messages, default=0)

    def opened(self, ws: websocket.WebSocket) -> None:
        for room in self.rooms:
            join = {"command": "join", "room": room}
            if self.messages:
                join["since"] = self.newest
            ws.send(json.dumps(join))

    def _keep(self, message: dict, connection: int, live: bool) -> None:
        with self.lock:
            if message["id"] not in self.messages:
                self.messages[message["id"]] = Arrival(connection=connection, at=time.monotonic(), live=live)
                self.texts[message["id"]] = message["message"]

    def received(self, frame: dict, connection: int) -> None:
        if "join" in frame:
            for message in frame["messages"]:
                self._keep(message, connection, live=False)
            self.joined[frame["join"]] = connection
        elif "history" in frame:
            for message in frame["messages"]:
                self._keep(message, connection, live=False)
        elif frame.get("type") == "message":
            self._keep(frame, connection, live=True)

    def say(self, room: str, text: str) -> bool:
        return self.send({"command": "send", "room": room, "message": text})

    def in_rooms(self) -> bool:
        """Joined every room on the connection open now."""
        connection = len(self.stats.connections) - 1
        return self.connected and all(self.joined.get(room) == connection for room in self.rooms)


def delivery_report(clients, saved: Dict[int, float], *, items: str) -> dict:
    """How the saved items (id -> time.monotonic() it was saved) reached the clients.

    live: on the connection that was open when it was saved; caught_up: on a later
    connection (replayed on connect, or in a join reply); missing: never.
    """
    report = {"clients": len(clients), "saved": len(saved), "live": 0, "caught_up": 0, "missing": 0}
    missing_examples = []
    for client in clients:
        arrivals = getattr(client, items)
        connections = client.stats.connections
        for item_id, saved_at in saved.items():
            arrival = arrivals.get(item_id)
            if arrival is None:
                report["missing"] += 1
                missing_examples.append((client.name, item_id))
                continue
            opened = connections[arrival.connection].opened
            if arrival.live and opened <= saved_at:
                report["live"] += 1
            else:
                report["caught_up"] += 1
    report["missing_examples"] = missing_examples[:10]
    return report
