"""Clients that talk to the real processes over sockets: a WebSocket client and a login."""

import json
import time
from typing import Callable, List, Optional

import requests
import websocket


def login_cookie(base_url: str, username: str, password: str) -> str:
    """Logs in through the real login page; returns the Cookie header a browser would send."""
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, f"login failed for {username}: {response.status_code}"
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


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
