"""A WebSocket client for the real processes (the login is tools.site_stack.login_cookie)."""

import json
import time
from typing import Callable, List, Optional

import websocket


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

    @property
    def connected(self) -> bool:
        return self.ws.connected

    def close(self) -> None:
        self.ws.close()
