"""A new user's first command, checked from outside: `make run` on a fresh clone.

    python3 -m tools.first_run [--revision REV] [--keep]

It clones this repository (its committed REV, HEAD by default) into a temporary directory,
so that no `.venv`, `.venv-redis` or `var/` of this checkout can help, runs `make run` there
as a user would, and waits for the site. Then, through real sockets on the front door, it
publishes a liveblog post in the admin and sees it reach an open stream, and sends a chat
message from one socket and sees it reach another member of the room. It stops the stack with
SIGINT to make's process group, as Ctrl-C does, and checks that no process of it is left.

It imports nothing but the standard library and the stdlib-only `tools.waits`, and the
stack it checks has only what `make run` installed (the runtime set): it cannot pass because
of something the test set put in place. `.ci/run` runs it before `make test`.
"""

import argparse
import base64
import hashlib
import html.parser
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional

from tools.waits import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
# A fresh machine's make run builds .venv from PyPI and unpacks redis-server first.
STARTUP_SECONDS = 900
FRAME_SECONDS = 30
STOP_SECONDS = 60
# What a new user's shell would not have set: make run picks its own Redis, database and settings.
UNSET = ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CheckFailed(Exception):
    pass


class WebSocket:
    """A minimal RFC 6455 client for JSON text frames: enough to be a page, with no package."""

    def __init__(self, url: str, *, origin: str, cookie: str = "", timeout: float = FRAME_SECONDS):
        parts = urllib.parse.urlsplit(url)
        self._socket = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {origin}",
        ]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status, *headers = head.decode("latin-1").split("\r\n")
        if " 101 " not in f"{status} ":
            raise CheckFailed(f"{url}: handshake answered {status!r}")
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if not any(line.lower().startswith("sec-websocket-accept:") and accept in line for line in headers):
            raise CheckFailed(f"{url}: handshake without the right Sec-WebSocket-Accept")

    def _fill(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise CheckFailed("the server closed the connection")
        self._buffer += chunk

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        # Clients mask every frame (RFC 6455 5.3).
        mask = os.urandom(4)
        self._socket.sendall(header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)))

    def send(self, payload: dict) -> None:
        self._send_frame(0x1, json.dumps(payload).encode())

    def receive(self) -> dict:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise CheckFailed(f"the server closed the socket with {code}: {payload[2:].decode(errors='replace')}")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def receive_until(self, predicate: Callable[[dict], bool], *, what: str) -> dict:
        deadline = time.monotonic() + FRAME_SECONDS
        seen: List[dict] = []
        while time.monotonic() < deadline:
            self._socket.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                frame = self.receive()
            except TimeoutError:
                break
            if predicate(frame):
                return frame
            seen.append(frame)
        raise CheckFailed(f"no {what} within {FRAME_SECONDS}s; frames seen instead: {seen[-5:]}")

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self._socket.close()


class _Form(html.parser.HTMLParser):
    """The csrf token of a page's form, and the options of its select fields."""

    def __init__(self):
        super().__init__()
        self.csrf = ""
        self.options: Dict[str, List[tuple]] = {}
        self._select: Optional[str] = None
        self._option: Optional[str] = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") == "csrfmiddlewaretoken":
            self.csrf = attrs.get("value", "")
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select and attrs.get("value"):
            self._option = attrs["value"]

    def handle_data(self, data):
        if self._select and self._option is not None:
            self.options.setdefault(self._select, []).append((self._option, data.strip()))
            self._option = None

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


class Browser:
    """Plain pages over HTTP with a cookie jar, as a browser posts Django's forms."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> str:
        with self._opener.open(self.base + path, timeout=FRAME_SECONDS) as response:
            return response.read().decode()

    def form(self, path: str) -> _Form:
        parser = _Form()
        parser.feed(self.get(path))
        if not parser.csrf:
            raise CheckFailed(f"{path} has no form with a csrf token")
        return parser

    def post(self, path: str, fields: dict) -> str:
        """Posts a form; returns where it led (Django answers a good form with a redirect)."""
        request = urllib.request.Request(
            self.base + path,
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Referer": self.base + path, "Origin": self.base},
        )
        with self._opener.open(request, timeout=FRAME_SECONDS) as response:
            return response.geturl()

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)


def site_answers(base: str, make: subprocess.Popen, log: Path) -> bool:
    if make.poll() is not None:
        raise CheckFailed(f"make run exited with {make.returncode} before the site answered (its output is above)")
    try:
        with urllib.request.urlopen(f"{base}/liveblog/demo/", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def check_liveblog(base: str, origin: str, browser: Browser) -> None:
    stream = WebSocket(f"{base.replace('http', 'ws', 1)}/liveblog/demo/stream/", origin=origin)
    try:
        form = browser.form("/admin/liveblog/post/add/")
        liveblog = next((value for value, label in form.options.get("liveblog", []) if "Demo" in label), None)
        if liveblog is None:
            raise CheckFailed(f"the post form offers no demo liveblog: {form.options}")
        body = f"first-run post {secrets.token_hex(4)}"
        landed = browser.post(
            "/admin/liveblog/post/add/",
            {"csrfmiddlewaretoken": form.csrf, "liveblog": liveblog, "body": body, "_save": "Save"},
        )
        if landed.rstrip("/").endswith("/add"):
            raise CheckFailed("the admin did not accept the post (it showed the form again)")
        stream.receive_until(
            lambda frame: frame.get("type") == "post.created" and frame["post"]["body"] == body,
            what=f"post.created frame for {body!r} on the open stream",
        )
    finally:
        stream.close()
    print(f"  a post published in the admin reached an open liveblog stream: {body!r}", flush=True)


def check_chat(base: str, origin: str, browser: Browser) -> None:
    url = f"{base.replace('http', 'ws', 1)}/chat/stream/"
    member = WebSocket(url, origin=origin, cookie=browser.cookie_header())
    sender = WebSocket(url, origin=origin, cookie=browser.cookie_header())
    try:
        for socket_ in (member, sender):
            socket_.send({"command": "join", "room": "general"})
            socket_.receive_until(lambda frame: frame.get("join") == "general", what="join reply")
        text = f"first-run message {secrets.token_hex(4)}"
        sender.send({"command": "send", "room": "general", "message": text})
        member.receive_until(
            lambda frame: frame.get("type") == "message" and frame.get("message") == text,
            what=f"chat message {text!r} at the other member",
        )
    finally:
        member.close()
        sender.close()
    print(f"  a chat message reached another member of the room: {text!r}", flush=True)


def processes_of(clone: Path) -> List[int]:
    """Live processes that run from the clone or carry it in their environment (every program
    supervisord starts gets SITE_DIR)."""
    marker = str(clone).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie is already gone; only its parent's wait is missing
            if marker in (entry / "environ").read_bytes() or marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def describe(pids: List[int]) -> str:
    lines = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            lines.append(f"{pid}: {command}")
        except OSError:
            pass
    return "\n".join(lines)


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(revision: str, keep: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="first-run-"))
    clone = workdir / "site"
    log = workdir / "make-run.log"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", revision], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env["PORT"] = str(port)
    print(f"first run: make run in a fresh clone of {commit.stdout.strip()} at {clone}, on {base}", flush=True)
    started = time.monotonic()
    with open(log, "wb") as output:
        # Its own session: SIGINT to its process group is what Ctrl-C in a terminal sends.
        make = subprocess.Popen(
            ["make", "run"], cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_until(
                lambda: site_answers(base, make, log),
                timeout=STARTUP_SECONDS,
                interval=1.0,
                message="the demo liveblog page through the front door",
            )
        except TimeoutError as error:
            raise CheckFailed(f"{error} (make run's output is above)")
        print(f"  the site answered {time.monotonic() - started:.0f}s after make run", flush=True)

        browser = Browser(base)
        login = browser.form("/accounts/login/")
        browser.post("/accounts/login/", {"csrfmiddlewaretoken": login.csrf, "username": "demo", "password": "demo"})
        if "sessionid" not in browser.cookie_header():
            raise CheckFailed("logging in as demo / demo gave no session")
        check_liveblog(base, base, browser)
        check_chat(base, base, browser)

        os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"make run did not stop within {STOP_SECONDS}s of SIGINT:\n{tail(log)}")
        try:
            wait_until(lambda: not processes_of(clone), timeout=10, message="no process of the stack")
        except TimeoutError:
            raise CheckFailed(f"processes left after Ctrl-C:\n{describe(processes_of(clone))}")
        print(f"  Ctrl-C stopped make run (exit {make.returncode}) and left no process", flush=True)
    except BaseException:
        print(f"make run's output ({log}):\n{tail(log)}", file=sys.stderr, flush=True)
        raise
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(10)
        for pid in processes_of(clone):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="HEAD", help="the commit to clone (default: HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    arguments = parser.parse_args()
    try:
        run(arguments.revision, arguments.keep)
    except CheckFailed as failure:
        sys.exit(f"first run FAILED: {failure}")
    print("first run: passed", flush=True)


if __name__ == "__main__":
    main()
