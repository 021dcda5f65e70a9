"""A WebSocket client for the real processes (the login is tools.site_stack.login_cookie)."""

import base64
import json
import os
import socket
import time
from typing import Callable, List, Optional
from urllib.parse import urlparse

import websocket


def next_frame(ws: websocket.WebSocket) -> tuple:
    """(opcode, payload) of the next frame, without answering a close frame with one of ours
    as websocket-client's recv_data does: a server that closes the TCP connection right after
    its close frame would make that answer fail with a reset, after the close had come."""
    frame = ws.recv_frame()
    return frame.opcode, frame.data


def close_code_of(data: bytes) -> Optional[int]:
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None


def handshake(url: str, *, cookie: str = "") -> tuple:
    """One WebSocket handshake on a raw socket: (status, headers); the connection is then dropped."""
    parsed = urlparse(url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {parsed.path} HTTP/1.1",
        f"Host: {parsed.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://{parsed.netloc}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line, *header_lines = head.split(b"\r\n\r\n")[0].decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return int(status_line.split()[1]), headers


class Socket:
    """A WebSocket to daphne that keeps every frame it received, in order."""

    def __init__(self, url: str, *, cookie: Optional[str] = None, timeout: float = 10.0):
        self.url = url
        headers = [f"Cookie: {cookie}"] if cookie else []
        self.ws = websocket.create_connection(url, timeout=timeout, header=headers)
        self.frames: List[dict] = []

    def send(self, payload) -> None:
        self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    def send_binary(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def recv(self, timeout: float = 10.0) -> dict:
        self.ws.settimeout(timeout)
        frame = json.loads(self.ws.recv())
        self.frames.append(frame)
        return frame

    def recv_until(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """The first frame (already received or arriving within timeout) that matches."""
        for frame in self.frames:
            if predicate(frame):
                self.frames.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame within {timeout}s; got {self.frames[-5:]}")
            self.ws.settimeout(remaining)
            try:
                frame = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no matching frame within {timeout}s; got {self.frames[-5:]}")
            if predicate(frame):
                return frame
            self.frames.append(frame)

    def drain(self, quiet: float = 0.5) -> List[dict]:
        """Every frame that arrives until none has for `quiet` seconds."""
        while True:
            self.ws.settimeout(quiet)
            try:
                self.frames.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                return self.frames

    def close_code(self, timeout: float = 10.0) -> Optional[int]:
        """Reads until the server's close frame (keeping text frames on the way); returns its code."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no close frame within {timeout}s; got {self.frames[-5:]}")
            self.ws.settimeout(remaining)
            opcode, data = next_frame(self.ws)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return close_code_of(data)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self.frames.append(json.loads(data))

    @property
    def connected(self) -> bool:
        return self.ws.connected

    def close(self) -> None:
        self.ws.close()


class ChangeCursor:
    """A liveblog page's `since`, kept as liveblog.js keeps it: the highest change number
    (seq) up to which it has seen every change; a catch-up ends with liveblog.synced."""

    def __init__(self, start: int = 0):
        self.value = start
        self._ahead: set = set()

    def saw(self, frame: dict) -> None:
        """Takes any frame of the stream; moves on for post frames and liveblog.synced."""
        kind, seq = frame.get("type"), frame.get("seq")
        if not isinstance(seq, int):
            return
        if kind == "liveblog.synced":
            self.value = seq
            self._ahead = {later for later in self._ahead if later > seq}
        elif kind in ("post.created", "post.updated", "post.deleted") and seq > self.value:
            self._ahead.add(seq)
        while self.value + 1 in self._ahead:
            self._ahead.remove(self.value + 1)
            self.value += 1
