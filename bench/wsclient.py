"""Many WebSockets in one asyncio process, cheap enough per frame to hold 1,000 of them.

Each socket is websockets' sans-I/O ClientProtocol (handshake, framing, masking, ping and
close as the library does them) on a plain asyncio transport, without a task or a queue
per socket: a frame costs the client a parse and a callback. Every text frame is handed
to the socket's `on_text(socket, data, at)` with `at`, the time.time() its bytes arrived.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

OnText = Callable[["Socket", bytes, float], None]


def _ignore(socket: Socket, data: bytes, at: float) -> None:
    pass


class Socket(asyncio.Protocol):
    """One WebSocket client connection."""

    def __init__(self, url: str, *, cookie: str | None = None, on_text: OnText = _ignore):
        loop = asyncio.get_running_loop()
        self.url = url
        self.on_text = on_text
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        request = self.ws.connect()
        # As a browser on one of the site's pages would: the site accepts handshakes only
        # from an Origin among its ALLOWED_HOSTS.
        uri = parse_uri(url)
        request.headers["Origin"] = f"http://{uri.host}:{uri.port}"
        if cookie:
            request.headers["Cookie"] = cookie
        self.ws.send_request(request)
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        # Set by the chat's join reply.
        self.joined: asyncio.Future = loop.create_future()
        self.errors: list[bytes] = []
        self.seen: set[int] = set()
        # The highest message number this socket has had, to see one arrive out of order.
        self.highest = -1
        self.transport: asyncio.Transport | None = None
        self._fragments: list[bytes] | None = None

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._flush()

    def data_received(self, data: bytes) -> None:
        at = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    if event.fin:
                        self.on_text(self, event.data, at)
                    else:
                        self._fragments = [event.data]
                elif event.opcode is Opcode.CONT and self._fragments is not None:
                    self._fragments.append(event.data)
                    if event.fin:
                        text, self._fragments = b"".join(self._fragments), None
                        self.on_text(self, text, at)
            elif isinstance(event, Response) and not self.opened.done():
                if self.ws.handshake_exc is None:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(self.ws.handshake_exc)
        self._flush()

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{self.url}: closed before the handshake ({exc})"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    # Use

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN and not self.closed.done()

    def send_json(self, payload: dict) -> None:
        self.ws.send_text(json.dumps(payload, separators=(",", ":")).encode("utf8"))
        self._flush()

    async def close(self, timeout: float = 5.0) -> None:
        """Closing handshake; drops the TCP connection if the server has not closed it within timeout."""
        if self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


async def connect(url: str, *, cookie: str | None = None, on_text: OnText = _ignore, timeout: float = 20.0) -> Socket:
    loop = asyncio.get_running_loop()
    uri = parse_uri(url)
    _, socket = await asyncio.wait_for(
        loop.create_connection(lambda: Socket(url, cookie=cookie, on_text=on_text), uri.host, uri.port), timeout
    )
    await asyncio.wait_for(socket.opened, timeout)
    return socket


@dataclass
class Opened:
    """What opening many sockets gave: the open ones, and why the others are not."""

    sockets: list[Socket] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    join_timeouts: int = 0
    # Sockets never tried because the opening's time limit had passed.
    not_tried: int = 0
    seconds: float = 0.0


async def open_many(
    specs: Sequence[tuple[str, str | None]],
    *,
    on_text: OnText,
    concurrency: int,
    join_room: str | None = None,
    timeout: float = 30.0,
    limit: float | None = None,
) -> Opened:
    """Opens a socket per (url, cookie), at most `concurrency` handshakes (and joins) at once.

    With join_room, each socket joins the chat room and waits for the join reply before
    the next one starts; a socket whose reply does not come within timeout still counts as
    open (it may be in the room all the same), and is counted in join_timeouts. With
    `limit`, no socket is tried once that many seconds have passed (counted in not_tried).
    """
    result = Opened()
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    slots: list[Socket | None] = [None] * len(specs)

    async def one(index: int, url: str, cookie: str | None) -> None:
        async with gate:
            if limit is not None and time.monotonic() - started > limit:
                result.not_tried += 1
                return
            try:
                socket = await connect(url, cookie=cookie, on_text=on_text, timeout=timeout)
            except Exception as error:  # Whatever it was, that socket failed to open.
                result.failures.append(f"{type(error).__name__}: {error}")
                return
            slots[index] = socket
            if join_room is not None:
                socket.send_json({"command": "join", "room": join_room})
                try:
                    await asyncio.wait_for(asyncio.shield(socket.joined), timeout)
                except TimeoutError:
                    result.join_timeouts += 1

    await asyncio.gather(*(one(index, url, cookie) for index, (url, cookie) in enumerate(specs)))
    result.sockets = [socket for socket in slots if socket is not None]
    result.seconds = time.monotonic() - started
    return result


async def close_many(sockets: Sequence[Socket], *, concurrency: int, timeout: float = 10.0) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(socket: Socket) -> None:
        async with gate:
            await socket.close(timeout)

    await asyncio.gather(*(one(socket) for socket in sockets))


# The text of every benchmark message or post: "bench <tag> <number>".
MARKED = re.compile(rb'"(?:message|body)":\s*"bench (\w+) (\d+)"')


class Tally:
    """Who received which numbered message of this run, and when.

    Messages are chat messages or liveblog posts whose text is "bench <tag> <n>"; each
    socket counts a number once (a repeat is counted in `repeats`).
    """

    def __init__(self, tag: str):
        self.tag = tag.encode()
        self.count: defaultdict[int, int] = defaultdict(int)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.arrivals: defaultdict[int, list[float]] = defaultdict(list)
        self.repeats = 0
        # Copies that came after a higher-numbered message to the same socket.
        self.out_of_order = 0
        self._expected: dict[int, tuple[int, asyncio.Future]] = {}

    def on_text(self, socket: Socket, data: bytes, at: float) -> None:
        if data.startswith(b'{"join"'):
            if not socket.joined.done():
                socket.joined.set_result(at)
            return
        if data.startswith(b'{"error"'):
            socket.errors.append(data)
            return
        match = MARKED.search(data)
        if match is None or match.group(1) != self.tag:
            return
        number = int(match.group(2))
        if number in socket.seen:
            self.repeats += 1
            return
        socket.seen.add(number)
        if number < socket.highest:
            self.out_of_order += 1
        socket.highest = max(socket.highest, number)
        self.count[number] += 1
        self.arrivals[number].append(at)
        self.first.setdefault(number, at)
        self.last[number] = at
        expected = self._expected.get(number)
        if expected is not None and self.count[number] >= expected[0] and not expected[1].done():
            expected[1].set_result(at)

    async def wait(self, number: int, expected: int, *, since: float, quiet: float, limit: float) -> bool:
        """Until `expected` sockets have message `number`: True, or False once none has come
        for `quiet` seconds (or `limit` seconds have passed since `since`, a time.time())."""
        done = asyncio.get_running_loop().create_future()
        self._expected[number] = (expected, done)
        if self.count[number] >= expected:
            return True
        deadline = since + limit
        try:
            while not done.done():
                remaining = min(self.last.get(number, since) + quiet, deadline) - time.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(asyncio.shield(done), remaining)
                except TimeoutError:
                    continue
            return True
        finally:
            del self._expected[number]
