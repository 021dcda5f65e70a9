"""The kit's own Channels 1 site (tests/kit/site) as real processes, on whichever runtime runs pytest.

A private redis-server, two daphnes and two runworkers, all from this interpreter's
environment (so the loader under test is the one that starts them), spoken to over real
sockets. Nothing here replaces the channel layer: every frame goes through Redis.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.clients import Socket
from tools.processes import REPO, VENV_BIN, Cluster, Process, RedisServer, free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SETTINGS = "tests.kit.settings"
LAYER_PREFIX = "kit-site:"
# An upper bound for any one reply, not an expectation of speed.
WAIT = 15.0
USERNAME, PASSWORD = "ada", "ada-lovelace"


class KitSite(Cluster):
    """Redis, daphnes and runworkers of the kit's site, sharing one SQLite file in workdir."""

    def __init__(self, workdir: Path, *, daphnes: int = 2, workers: int = 2):
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.log_dir)
        self.daphne_count = daphnes
        self.worker_count = workers
        self.daphnes: list[Process] = []
        self.daphne_ports: list[int] = []
        self.workers: list[Process] = []

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS,
            KIT_SITE_DIR=str(self.workdir),
            REDIS_URL=self.redis.url,
            PYTHONUNBUFFERED="1",
        )
        # Whatever the calling shell set for the loader, the site runs the way it is deployed.
        env.pop("CHANNELS1_KIT_LOADER", None)
        return env

    def django(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"django-admin {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> "KitSite":
        self.redis.start()
        self.django("migrate", "--noinput", "-v", "0")
        create_user = f"User.objects.create_user({USERNAME!r}, password={PASSWORD!r})"
        self.django("shell", "-c", f"from django.contrib.auth.models import User; {create_user}")
        for index in range(self.worker_count):
            self.workers.append(
                Process(
                    f"worker-{index}",
                    [sys.executable, "-m", "django", "runworker", f"--settings={SETTINGS}"],
                    env=self.env,
                    log_dir=self.log_dir,
                )
            )
        for index in range(self.daphne_count):
            port = free_port()
            process = Process(
                f"daphne-{index}",
                [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "tests.kit.site.asgi:channel_layer"],
                env=self.env,
                log_dir=self.log_dir,
            )
            self.daphnes.append(process)
            self.daphne_ports.append(port)
            wait_for_port(port, process=process)
        self._wait_for_workers()
        return self

    def _wait_for_workers(self, timeout: float = 60.0) -> None:
        """Until every worker has answered a page: only then do both take frames."""
        waiting = {worker.pid for worker in self.workers}
        deadline = time.monotonic() + timeout
        while waiting:
            for process in self.workers + self.daphnes:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{process.tail()}")
            try:
                waiting.discard(requests.get(f"{self.http_url()}/hello/", timeout=5).json()["worker"])
            except requests.RequestException:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers {sorted(waiting)} served nothing within {timeout}s:\n{self.logs()}")

    def http_url(self, daphne: int = 0) -> str:
        return f"http://127.0.0.1:{self.daphne_ports[daphne]}"

    def ws_url(self, path: str, daphne: int = 0) -> str:
        return f"ws://127.0.0.1:{self.daphne_ports[daphne]}{path}"

    @property
    def worker_pids(self) -> set[int]:
        return {worker.pid for worker in self.workers}


def process_group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """Whether nothing of the group is left (its members may take a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[KitSite]:
    kit_site = KitSite(tmp_path_factory.mktemp("kit-site"))
    try:
        kit_site.start()
    except BaseException:
        print(kit_site.logs())
        kit_site.stop()
        raise
    yield kit_site
    kit_site.stop()
    left = [process.name for process in kit_site.processes() if not process_group_gone(process.pid)]
    assert not left, f"still running after stop: {left}"


@pytest.fixture
def open_socket(site) -> Iterator:
    """open_socket(path, daphne=0, cookie=None): a real WebSocket to one daphne, closed after the test."""
    opened: list[Socket] = []

    def open_(path: str, *, daphne: int = 0, cookie: str | None = None) -> Socket:
        sock = Socket(site.ws_url(path, daphne), cookie=cookie, timeout=WAIT)
        opened.append(sock)
        return sock

    yield open_
    for sock in opened:
        if sock.connected:
            sock.close()


@pytest.fixture(scope="module")
def login_cookie(site) -> str:
    """The Cookie header of a login made through daphne and a worker."""
    session = requests.Session()
    response = session.post(
        f"{site.http_url(0)}/login/", data={"username": USERNAME, "password": PASSWORD}, timeout=WAIT
    )
    assert response.status_code == 200, response.text
    assert "sessionid" in session.cookies
    return f"sessionid={session.cookies['sessionid']}"


def layer_for(site: KitSite):
    """A layer on the site's Redis, to look at group membership as the workers left it."""
    from fanout_layer import FanoutRedisChannelLayer

    return FanoutRedisChannelLayer(hosts=[site.redis.url], prefix=LAYER_PREFIX)


def wait_for(condition, *, timeout: float = WAIT, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def test_websocket_round_trip(open_socket, site):
    sock = open_socket("/echo/")
    sock.send("hello, kit")
    reply = sock.recv(WAIT)
    assert reply["echo"] == "hello, kit"
    assert reply["frames"] == 1
    # The answer came from a runworker, not from daphne.
    assert reply["worker"] in site.worker_pids


def test_channel_session_keeps_state_across_frames(open_socket, site):
    first = open_socket("/echo/", daphne=0)
    second = open_socket("/echo/", daphne=1)
    counts, workers = [], set()
    for round_ in range(1, 7):
        for sock in (first, second):
            sock.send(f"frame {round_}")
            reply = sock.recv(WAIT)
            counts.append(reply["frames"])
            workers.add(reply["worker"])
    # Each socket counts its own frames, whichever worker took the frame before.
    assert counts == [n for n in range(1, 7) for _ in range(2)]
    assert workers <= site.worker_pids


def test_group_broadcast_reaches_sockets_on_both_daphnes(open_socket, site):
    on_first = open_socket("/rooms/lobby/", daphne=0)
    on_second = open_socket("/rooms/lobby/", daphne=1)
    elsewhere = open_socket("/rooms/attic/", daphne=1)
    for sock in (on_first, on_second, elsewhere):
        assert sock.recv(WAIT)["hello"] == ""

    on_first.send({"say": "to the whole lobby"})
    expected = {"room": "lobby", "said": "to the whole lobby", "by": ""}
    assert on_first.recv(WAIT) == expected
    assert on_second.recv(WAIT) == expected
    # The broadcast has been delivered, so had the attic socket been sent it, it would come
    # before the answer to this frame.
    elsewhere.send({"seq": 0})
    assert elsewhere.recv(WAIT) == {"seq": 0, "seen": 1, "previous": None, "user": ""}

    layer = layer_for(site)
    wait_for(lambda: len(layer.group_channels("room-lobby")) == 2, what="both lobby sockets in the group")
    on_second.close()
    # websocket.disconnect reached a worker, whose Group.discard took the socket out.
    wait_for(lambda: len(layer.group_channels("room-lobby")) == 1, what="the closed socket left the group")
    on_first.send({"say": "who is left"})
    assert on_first.recv(WAIT)["said"] == "who is left"


def test_enforce_ordering_runs_a_burst_of_frames_in_order(open_socket):
    sock = open_socket("/rooms/burst/", daphne=1)
    assert sock.recv(WAIT)["hello"] == ""
    # Sent without waiting for answers: the two workers take them as they come.
    for seq in range(40):
        sock.send({"seq": seq})
    replies = sorted((sock.recv(WAIT) for _ in range(40)), key=lambda reply: reply["seq"])
    # Each consumer ran after the one of the frame before, and saw what it saved. The replies
    # themselves may arrive out of order: channels 1.1 sends them when the consumer returns,
    # which is after enforce_ordering has released the next frame to the other worker.
    assert [reply["seq"] for reply in replies] == list(range(40))
    assert [(reply["seen"], reply["previous"]) for reply in replies] == [(1, None)] + [
        (seq + 1, seq - 1) for seq in range(1, 40)
    ]


def test_http_page_is_served_by_a_worker_through_each_daphne(site):
    for daphne in range(len(site.daphne_ports)):
        response = requests.get(f"{site.http_url(daphne)}/hello/", timeout=WAIT)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        page = response.json()
        assert page["worker"] in site.worker_pids
        assert page["user"] == ""
    assert requests.get(f"{site.http_url(0)}/nowhere/", timeout=WAIT).status_code == 404


def test_login_from_http_follows_the_socket(open_socket, site, login_cookie):
    # The session the login (a worker's view) saved is read by the other daphne's page...
    page = requests.get(f"{site.http_url(1)}/hello/", headers={"Cookie": login_cookie}, timeout=WAIT).json()
    assert page["user"] == USERNAME
    # ...and by channel_session_user_from_http on connect, which keeps the user in the
    # channel session: later frames carry no cookie.
    sock = open_socket("/rooms/members/", daphne=1, cookie=login_cookie)
    assert sock.recv(WAIT) == {"hello": USERNAME, "room": "members"}
    for seq in range(3):
        sock.send({"seq": seq})
        assert sock.recv(WAIT) == {"seq": seq, "seen": seq + 1, "previous": seq - 1 if seq else None, "user": USERNAME}
    sock.send({"say": "hi"})
    assert sock.recv(WAIT) == {"room": "members", "said": "hi", "by": USERNAME}

    anonymous = open_socket("/rooms/members/", daphne=0)
    assert anonymous.recv(WAIT) == {"hello": "", "room": "members"}
