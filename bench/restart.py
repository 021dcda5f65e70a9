"""A rolling restart of both daphnes with a crowd open (issue 19): what the pages go through.

Pages behave as the site's do: a liveblog page reconnects with `?since=` its last change, a
chat member rejoins its room with `since` its last message; told when to come back (a frame
with `retry_after`: the drain's 4012, the busy answer's 4013, 4430), a page waits that long,
else it waits as WebSocketBridge does (1.5-3 s at random, then x1.3 up to 10 s). A page goes
back through whichever daphne still listens, as through a load balancer. Meanwhile a liveblog
post goes out every second and a chat message every two seconds, and a bystander's echo is
timed. Both daphnes get SIGTERM in turn, each started again on its port once it has exited.

Each page's gap runs from its socket's close to its return (the handshake for a liveblog page,
the join reply for a chat member); missed is what a page never got of what was published
while it was around, live or by catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tools.processes import Process, wait_for_port

from . import procstat
from .stats import summary_ms
from .targets import LIVEBLOG
from .wsclient import Socket, connect

POST_EVERY_S = 1.0
MESSAGE_EVERY_S = 2.0
ECHO_EVERY_S = 0.5
# WebSocketBridge's reconnect delays.
FIRST_DELAY_S = (1.5, 3.0)
BACKOFF = 1.3
MAX_DELAY_S = 10.0
TAG = b"restart"
# How long a chat member waits for its join reply before it gives the socket up, and how long a
# liveblog page watches a new socket for a busy or restarting answer.
JOIN_WAIT_S = 30.0
QUIET_WAIT_S = 3.0


@dataclass
class Page:
    kind: str  # "liveblog" or "chat"
    home: int  # the daphne it opened on first
    room: str | None = None
    cookie: str | None = None
    socket: Socket | None = None
    cursor: int = 0  # liveblog: the last change; chat: the last message id
    seen: set = field(default_factory=set)
    retry_after: float | None = None
    closed_at: float | None = None
    gaps: list = field(default_factory=list)
    refused: int = 0
    busy: int = 0
    back: asyncio.Event = field(default_factory=asyncio.Event)
    # Whether the stream of the page's socket has sent a change or its catch-up's seq yet (ends
    # the watch for a busy answer early).
    spoke: asyncio.Future | None = None


def _why(error: BaseException) -> str:
    """A failed handshake's kind: the exception's class, and the status a server answered with."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    return f"{type(error).__name__} {status}" if status else type(error).__name__


class RollingRestart:
    def __init__(self, target, config, *, sockets: int, chat_members: int, rooms: list[str]):
        self.target = target
        self.config = config
        self.sockets = sockets
        self.chat_members = chat_members
        self.rooms = rooms
        self.pages: list[Page] = []
        self.live = [True] * target.daphne_count
        self.posts: dict[int, float] = {}
        self.messages: dict[int, tuple[str, float]] = {}
        self.echoes: list[float] = []
        self.echo_lost = 0
        self.reconnects = 0
        # Why handshakes failed, by kind: what to fix differs (a timeout is a daphne too busy to
        # answer, a reset one that closed its listening socket with the connection in its backlog).
        self.refusals: Counter[str] = Counter()
        self.stop = asyncio.Event()

    # -- one page ------------------------------------------------------------------------

    def _on_text(self, page: Page):
        def on_text(socket: Socket, data: bytes, at: float) -> None:
            try:
                frame = json.loads(data)
            except ValueError:
                return
            if "retry_after" in frame:
                page.retry_after = float(frame["retry_after"])
                page.busy += frame.get("error") == "server-busy"
            if page.kind == "chat" and frame.get("join") == page.room:
                for message in frame.get("messages", []):
                    self._saw_message(page, message)
                if not socket.joined.done():
                    socket.joined.set_result(at)
                return
            if page.kind == "liveblog" and "seq" in frame and page.spoke and not page.spoke.done():
                page.spoke.set_result(at)
            if page.kind == "liveblog" and "seq" in frame:
                page.cursor = max(page.cursor, frame["seq"])
                body = (frame.get("post") or {}).get("body", "")
                if body.startswith("bench restart "):
                    page.seen.add(int(body.rsplit(" ", 1)[1]))
            elif page.kind == "chat" and frame.get("type") == "message":
                self._saw_message(page, frame)

        return on_text

    @staticmethod
    def _saw_message(page: Page, message: dict) -> None:
        page.cursor = max(page.cursor, message.get("id", 0))
        text = message.get("message", "")
        if text.startswith("bench restart "):
            page.seen.add(int(text.rsplit(" ", 1)[1]))

    def _url(self, page: Page, daphne: int) -> str:
        if page.kind == "liveblog":
            return self.target.liveblog_url(daphne).split("?")[0] + f"?since={page.cursor}"
        return self.target.chat_url(daphne)

    async def _open(self, page: Page, gate: asyncio.Semaphore | None = None, *, first: bool = False) -> float | None:
        """One attempt through any listening daphne (its home first): when it was back, or None.

        A handshake daphne answers itself (server-busy, 4013; told to come back) is no return: a
        liveblog page counts as back from its handshake once its stream has sent a change or its
        catch-up, a chat member once its join reply has come. `gate` bounds the handshakes (and joins) in
        flight; a liveblog page's moment of waiting is outside it, or it would bound the rate."""
        gate = gate or contextlib.nullcontext()
        order = [page.home] + [index for index in range(self.target.daphne_count) if index != page.home]
        for daphne in order:
            if not self.live[daphne]:
                continue
            async with gate:
                page.spoke = asyncio.get_running_loop().create_future()
                try:
                    socket = await connect(
                        self._url(page, daphne), cookie=page.cookie, on_text=self._on_text(page), timeout=10
                    )
                except ConnectionRefusedError:
                    continue  # not listening (draining, or restarting): the next daphne, as a load balancer
                except Exception as error:
                    page.refused += 1
                    self.refusals[_why(error)] += 1
                    return None
                opened_at = time.monotonic()
                page.socket = socket
                if page.kind == "chat":
                    socket.send_json({"command": "join", "room": page.room, "since": page.cursor})
                    await asyncio.wait(
                        [asyncio.shield(socket.joined), asyncio.shield(socket.closed)],
                        timeout=JOIN_WAIT_S,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if socket.joined.done() and socket.open:
                        return time.monotonic()
                    # Never two sockets for one page: one that got no join reply is given up.
                    await socket.close(timeout=1.0)
                    return None
            # A busy or restarting answer is a frame with retry_after and a close right after the
            # handshake; a page that got neither is back from its handshake on, whether its stream
            # has spoken yet (its catch-up, a post) or not.
            await asyncio.wait(
                [asyncio.shield(page.spoke), asyncio.shield(socket.closed)],
                timeout=1 if first else QUIET_WAIT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if socket.open and page.retry_after is None:
                return opened_at
            if socket.open:
                await socket.close(timeout=1.0)
            return None
        page.refused += 1
        self.refusals["no daphne listening"] += 1
        return None

    async def _keep_open(self, page: Page) -> None:
        """Reopens the page whenever its socket closes, until stop."""
        while not self.stop.is_set():
            await asyncio.shield(page.socket.closed)
            if self.stop.is_set():
                return
            page.closed_at = time.monotonic()
            delay = None
            while not self.stop.is_set():
                if page.retry_after is not None:
                    wait, page.retry_after = page.retry_after, None
                else:
                    delay = random.uniform(*FIRST_DELAY_S) if delay is None else min(delay * BACKOFF, MAX_DELAY_S)
                    wait = delay
                await asyncio.sleep(wait)
                back_at = await self._open(page)
                if back_at is not None:
                    break
            if self.stop.is_set():
                return
            self.reconnects += 1
            page.gaps.append(back_at - page.closed_at)
            page.closed_at = None

    # -- the run -----------------------------------------------------------------------

    async def run(self) -> dict:
        target, config = self.target, self.config
        cookies = [target.cookie(index) for index in range(config.users)]
        for index in range(self.sockets):
            daphne = index % target.daphne_count
            if index < self.chat_members:
                room = self.rooms[index % len(self.rooms)]
                self.pages.append(Page("chat", daphne, room=room, cookie=cookies[index % len(cookies)]))
            else:
                self.pages.append(Page("liveblog", daphne))
        opened_at = time.monotonic()
        gate = asyncio.Semaphore(config.connect_concurrency)

        async def first_open(page: Page) -> bool:
            return await self._open(page, gate, first=True) is not None

        results = await asyncio.gather(*(first_open(page) for page in self.pages))
        open_seconds = time.monotonic() - opened_at
        opened = [page for page, ok in zip(self.pages, results, strict=True) if ok]
        if len(opened) < len(self.pages):
            for page in opened:
                await page.socket.close(timeout=1.0)
            return {
                "error": f"only {len(opened)}/{len(self.pages)} pages opened",
                "open_seconds": round(open_seconds, 1),
            }
        keepers = [asyncio.create_task(self._keep_open(page)) for page in self.pages]
        traffic = asyncio.create_task(self._traffic())
        echo = asyncio.create_task(self._echo())
        cpu_before = procstat.cpu_by_kind(target.pids)
        began = time.monotonic()
        restarts = []
        try:
            await asyncio.sleep(3)
            for index in range(target.daphne_count):
                restarts.append(await self._restart(index))
            # Every page back (or a bound), then the catch-ups and the last posts arrive.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and any(page.closed_at is not None for page in self.pages):
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)
        finally:
            self.stop.set()
            await traffic
            await echo
        cpu = procstat.cpu_delta(cpu_before, procstat.cpu_by_kind(target.pids))
        await asyncio.sleep(2)  # the last post's and message's copies
        window = time.monotonic() - began
        for keeper in keepers:
            keeper.cancel()
        result = self._figures(restarts, cpu, window)
        result["open_seconds"] = round(open_seconds, 1)
        for page in self.pages:
            if page.socket is not None and page.socket.open:
                await page.socket.close(timeout=1.0)
        return result

    async def _restart(self, index: int) -> dict:
        """SIGTERM to daphne `index`; once it has exited, the same command on its port again."""
        process = self.target.stack.daphnes[index]
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        self.live[index] = True  # it stops listening by itself: the pages find out as they try
        while process.alive() and time.monotonic() - sent < 60:
            await asyncio.sleep(0.1)
        exited = time.monotonic()
        if process.alive():
            process.kill()
        self.live[index] = False
        replacement = Process(
            process.name,
            process.args,
            env=self.target.stack.env,
            log_dir=self.target.stack.log_dir,
            cwd=self.target.stack.site,
        )
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for_port(self.target.stack.daphne_ports[index], process=replacement, timeout=30)
        )
        self.target.stack.daphnes[index] = replacement
        self.live[index] = True
        return {"daphne": index, "stop_s": round(exited - sent, 1), "start_s": round(time.monotonic() - exited, 1)}

    async def _traffic(self) -> None:
        """A post a second through the ORM (a driver process, as the admin), a chat message every 2 s."""
        log = open(Path(self.target.stack.log_dir) / "restart-driver.log", "ab")
        driver = await asyncio.create_subprocess_exec(
            *(self.target.python, "-m", "bench.liveblog_driver", LIVEBLOG, "restart"),
            cwd=str(self.target.stack.site),
            env=self.target.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        number, next_message = 0, time.monotonic()
        try:
            while not self.stop.is_set():
                number += 1
                self.posts[number] = time.monotonic()
                driver.stdin.write(f"{number}\n".encode())
                await driver.stdin.drain()
                if time.monotonic() >= next_message:
                    self._send_message(number)
                    next_message += MESSAGE_EVERY_S
                await asyncio.sleep(POST_EVERY_S)
        finally:
            driver.stdin.close()
            try:
                await asyncio.wait_for(driver.wait(), 30)
            except TimeoutError:
                driver.kill()
            log.close()

    def _send_message(self, number: int) -> None:
        room = self.rooms[number % len(self.rooms)]
        sender = next(
            (page for page in self.pages if page.room == room and page.socket is not None and page.socket.open), None
        )
        if sender is not None:
            sender.socket.send_json({"command": "send", "room": room, "message": f"bench restart {number}"})
            self.messages[number] = (room, time.monotonic())

    async def _echo(self) -> None:
        """A bystander's round trips all along: its own room, its own login, sockets reopened as a page would."""
        room = "echo-0"
        got: dict[int, float] = {}

        def on_text(socket: Socket, data: bytes, at: float) -> None:
            if data.startswith(b'{"join"') and not socket.joined.done():
                socket.joined.set_result(at)
            elif b"bench bystander " in data:
                got[int(json.loads(data)["message"].rsplit(" ", 1)[1])] = time.monotonic()

        socket, number = None, 0
        while not self.stop.is_set():
            if socket is None or not socket.open:
                socket = None
                for daphne in range(self.target.daphne_count):
                    try:
                        socket = await connect(
                            self.target.chat_url(daphne), cookie=self.target.cookie(0), on_text=on_text, timeout=5
                        )
                        socket.send_json({"command": "join", "room": room})
                        await asyncio.wait_for(asyncio.shield(socket.joined), 5)
                        break
                    except Exception:
                        socket = None
                if socket is None:
                    await asyncio.sleep(ECHO_EVERY_S)
                    continue
            number += 1
            sent = time.monotonic()
            socket.send_json({"command": "send", "room": room, "message": f"bench bystander {number}"})
            while number not in got and time.monotonic() - sent < 5 and socket.open:
                await asyncio.sleep(0.01)
            if number in got:
                self.echoes.append(got[number] - sent)
            elif socket.open:
                self.echo_lost += 1
            # The chat lets a socket send 10 messages in 10 s: one every ECHO_EVERY_S at most... and a
            # fresh socket now and then keeps under it.
            await asyncio.sleep(max(ECHO_EVERY_S, 1.05))
        if socket is not None and socket.open:
            await socket.close(timeout=1.0)

    def _figures(self, restarts: list[dict], cpu: dict, window: float) -> dict:
        # A message whose sender's socket closed before a worker took it was never stored: only
        # those some member got count (what the database has is what the pages must have).
        stored = {number for page in self.pages if page.kind == "chat" for number in page.seen}
        unsent = [number for number in self.messages if number not in stored]
        for number in unsent:
            del self.messages[number]
        gaps = [gap for page in self.pages for gap in page.gaps]
        back = [page for page in self.pages if page.closed_at is None]
        missed_posts = missed_messages = 0
        for page in self.pages:
            if page.kind == "liveblog":
                missed_posts += sum(1 for number in self.posts if number not in page.seen)
            else:
                wanted = [number for number, (room, _) in self.messages.items() if room == page.room]
                missed_messages += sum(1 for number in wanted if number not in page.seen)
        return {
            "sockets": len(self.pages),
            "liveblog_pages": sum(page.kind == "liveblog" for page in self.pages),
            "chat_members": sum(page.kind == "chat" for page in self.pages),
            "restarts": restarts,
            "window_s": round(window, 1),
            "back": len(back),
            "reconnects": self.reconnects,
            "gap": summary_ms(gaps),
            "gap_max_s": round(max(gaps), 2) if gaps else None,
            "refused_handshakes": sum(page.refused for page in self.pages),
            "refused_why": dict(self.refusals.most_common()),
            "busy_answers": sum(page.busy for page in self.pages),
            "posts": len(self.posts),
            "messages": len(self.messages),
            "messages_never_stored": len(unsent),
            "missed_posts": missed_posts,
            "missed_messages": missed_messages,
            "pages_missing_something": sum(
                1
                for page in self.pages
                if (page.kind == "liveblog" and any(number not in page.seen for number in self.posts))
                or (
                    page.kind == "chat"
                    and any(n not in page.seen for n, (room, _) in self.messages.items() if room == page.room)
                )
            ),
            "cpu_s": {kind: round(seconds, 2) for kind, seconds in cpu.items()},
            "worker_cpu_ms_per_reconnect": round(1000 * cpu.get("worker", 0) / self.reconnects, 3)
            if self.reconnects
            else None,
            "echo": summary_ms(self.echoes),
            "echo_lost": self.echo_lost,
        }
