"""The kit as a maintainer would try it: built as a wheel, installed into a fresh virtualenv with
the site's runtime requirements, adopted by a small Channels 1 site (tests/kit/wheelsite) through
its settings only, and run as real processes: a redis-server, two daphnes, two runworkers.

The site's apps are named `chat` and `posts`, like the repo's own; its processes run with
cwd=tests/kit/wheelsite from the fresh virtualenv, so nothing of this checkout is importable
to them. The runtime is the one running pytest: Django 5.2 in .venv, Django 2.2 in .venv-django22,
Django 6.1 in .venv-django61; the wheel site installs that same Django.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
import websocket

from tests.integration.clients import Socket, close_code_of, next_frame
from tools.processes import REPO, Cluster, Process, RedisServer, free_port, wait_for_healthz, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

SITE = Path(__file__).resolve().parent / "wheelsite"
PREFIX = "wheelsite:"
WAIT = 20.0


def run(args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=kwargs.pop("timeout", 240), **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


# Where the runtime is another Django than requirements.txt's, the file that puts it over those
# pins (as make builds that runtime's virtualenv): Django's (major, minor) -> file.
DJANGO_OVERLAYS = {(6, 1): REPO / "requirements" / "django61.txt"}


def pinned_django(path: Path) -> str:
    (pin,) = (line for line in path.read_text().splitlines() if line.startswith("Django=="))
    return pin.split("==", 1)[1].strip()


def runtime_requirements(tmp: Path) -> list[list[str]]:
    """pip install argument lists for the site's runtime, as an adopting site takes them, on the
    Django that runs this test: the pins of the checkout's requirements.txt (less its ./kit line:
    the site installs the kit's wheel), with the Django overlay of requirements/ over them where
    this runtime is not the site's 5.2 (6.1: requirements/django61.txt), or on Django 2.2 the
    runtime part of requirements/django22.txt."""
    path = tmp / "requirements-runtime.txt"
    if django.VERSION >= (3, 0):
        lines = (REPO / "requirements.txt").read_text().splitlines()
        path.write_text("\n".join(line for line in lines if line.strip() != "./kit") + "\n")
        # Complete and resolved, and holding the chosen conflicts: installed as requirements.txt says.
        installs = [["--no-deps", "-r", str(path)]]
        if pinned_django(path) != django.__version__:
            overlay = DJANGO_OVERLAYS[django.VERSION[:2]]
            # The wheel site is proven on the Django running here, not on the site's pin.
            assert pinned_django(overlay) == django.__version__, f"{overlay} pins another Django than this runtime's"
            installs.append(["--no-deps", "-r", str(overlay)])
        return installs
    # requirements/django22.txt ends with the test tools; the site needs what comes before them.
    # Complete, and holding asgi_redis's redis and msgpack-python conflicts: installed without the resolver.
    lines = (REPO / "requirements" / "django22.txt").read_text().splitlines()
    runtime = lines[: next(i for i, line in enumerate(lines) if line.startswith("# Test tools"))]
    path.write_text("\n".join(runtime) + "\n")
    return [["--no-deps", "-r", str(path)]]


def wait_for(condition, *, timeout: float = WAIT, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(step)


def close_code(sock: Socket, timeout: float) -> int:
    """Reads until the server's close frame; returns its code."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no close frame")
        sock.ws.settimeout(remaining)
        opcode, data = next_frame(sock.ws)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return close_code_of(data) or 1005


class WheelSite(Cluster):
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.venv = workdir / "venv"
        self.bin = self.venv / "bin"
        self.redis = RedisServer(self.log_dir)
        self.daphnes: list[Process] = []
        self.ports: list[int] = []
        self.workers: list[Process] = []
        self.started = 0

    # -- the build ---------------------------------------------------------------------------
    def build(self) -> None:
        wheels = self.workdir / "wheels"
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO / "kit")])
        (wheel,) = wheels.glob("channels1_kit-*.whl")
        run([sys.executable, "-m", "venv", str(self.venv)])
        pip = [str(self.bin / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for args in runtime_requirements(self.workdir):
            run(pip + args)
        run(pip + ["--no-deps", str(wheel)])
        # As docs/adopting.md has a site check its install: nothing missing but the chosen conflict.
        run([str(self.bin / "python"), "-m", "channels1_kit.install_check"])

    @property
    def env(self) -> dict:
        return {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "wheelsite.settings",
            "WHEELSITE_DIR": str(self.workdir),
            "REDIS_URL": self.redis.url,
            "PYTHONUNBUFFERED": "1",
            # daphne's script directory is the venv's bin: the site's own folder, not the checkout.
            "PYTHONPATH": str(SITE),
        }

    def python(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run([str(self.bin / "python"), *args], cwd=SITE, env=self.env, timeout=timeout)

    def manage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.python("manage.py", *args, timeout=timeout)

    # -- the processes -----------------------------------------------------------------------
    def _name(self, kind: str) -> str:
        self.started += 1
        return f"{kind}-{self.started}"

    def start_worker(self) -> Process:
        process = Process(
            self._name("worker"),
            [str(self.bin / "python"), "manage.py", "runworker"],
            env=self.env,
            log_dir=self.log_dir,
            cwd=SITE,
        )
        self.workers.append(process)
        return process

    def start_daphne(self) -> int:
        port = free_port()
        process = Process(
            self._name("daphne"),
            [str(self.bin / "daphne"), "-b", "127.0.0.1", "-p", str(port), "channels1_kit.asgi:channel_layer"],
            env=self.env,
            log_dir=self.log_dir,
            cwd=SITE,
        )
        self.daphnes.append(process)
        self.ports.append(port)
        wait_for_port(port, process=process)
        return port

    def start(self) -> None:
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        for _ in range(2):
            self.start_worker()
        for _ in range(2):
            self.start_daphne()
        for port in self.ports:
            wait_for_healthz(f"http://127.0.0.1:{port}", timeout=60, describe=self.logs)
        self.manage("worker_health", "--timeout", "30", timeout=60)

    def ws(self, path: str, daphne: int = 0) -> Socket:
        return Socket(f"ws://127.0.0.1:{self.ports[daphne]}{path}", timeout=WAIT)

    def layer(self):
        from fanout_layer import FanoutRedisChannelLayer

        return FanoutRedisChannelLayer(hosts=[self.redis.url], prefix=PREFIX)

    def presence_count(self, room: str) -> int:
        code = f"from chat.models import Presence; print(Presence.objects.filter(room={room!r}).count())"
        return int(self.manage("shell", "-c", code).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[WheelSite]:
    wheel_site = WheelSite(tmp_path_factory.mktemp("wheelsite"))
    began = time.monotonic()
    wheel_site.build()
    wheel_site.build_seconds = time.monotonic() - began
    try:
        wheel_site.start()
    except BaseException:
        print(wheel_site.logs())
        wheel_site.stop()
        raise
    yield wheel_site
    wheel_site.stop()


@pytest.fixture
def sockets(site) -> Iterator[list]:
    opened: list[Socket] = []
    yield opened
    for sock in opened:
        try:
            if sock.connected:
                sock.close()
        except Exception:
            pass


def join(site: WheelSite, opened: list, room: str, daphne: int) -> Socket:
    sock = site.ws(f"/chat/{room}/", daphne)
    opened.append(sock)
    assert sock.recv(WAIT) == {"joined": room}
    return sock


def test_the_kit_comes_from_the_wheel_in_a_fresh_virtualenv(site):
    out = site.python(
        "-c",
        "import sys, channels1_kit, fanout_layer, chat, django;"
        "print(channels1_kit.__file__); print(fanout_layer.__file__); print(chat.__file__);"
        "print(django.VERSION[0]); print(sys.version_info[:2]); print(sys.path)",
    ).stdout.splitlines()
    kit_file, layer_file, chat_file, major, version, path = out[-6:]
    site_packages = str(site.venv / "lib")
    assert kit_file.startswith(site_packages) and layer_file.startswith(site_packages), out
    assert chat_file.startswith(str(SITE / "chat")), out
    assert int(major) == django.VERSION[0]
    assert site.python("-c", "import django; print(django.__version__)").stdout.split()[-1] == django.__version__
    assert version == str(tuple(sys.version_info[:2]))
    assert all(not entry.startswith(str(REPO)) or entry.startswith(str(SITE)) for entry in eval(path)), path  # noqa: S307  (our own repr)


def test_channel_report_and_worker_health_answer(site):
    report = json.loads(site.manage("channel_report", "--json", "--interval", "0.5").stdout)
    assert "worker.health" in json.dumps(report)
    site.manage("worker_health", "--timeout", "10")


def test_a_group_of_300_sockets_gets_every_message_of_a_burst_in_order(site, sockets):
    members = [join(site, sockets, "a", index % 2) for index in range(300)]
    sender = members[0]
    for n in range(20):
        sender.send({"say": f"m{n}", "n": n})
        sender.recv_until(lambda frame, n=n: frame.get("n") == n, timeout=WAIT)
    sender.frames.clear()
    for sock in members[1:]:
        received = [sock.recv(WAIT) for _ in range(20)]
        assert [frame["n"] for frame in received] == list(range(20))
    posts = site.ws("/posts/", 1)
    sockets.append(posts)
    publisher = site.ws("/posts/", 0)
    sockets.append(publisher)
    wait_for(lambda: len(site.layer().group_channels("posts")) == 2, what="both post sockets in the group")
    publisher.send({"publish": "hello"})
    assert posts.recv(WAIT) == {"post": "hello"}
    assert publisher.recv(WAIT) == {"post": "hello"}


def test_a_worker_stopped_with_sigterm_mid_traffic_loses_nothing(site, sockets):
    members = [join(site, sockets, "c", index % 2) for index in range(6)]
    stopping = site.workers[0]
    frames = 30
    for n in range(frames):
        for sock in members:
            sock.send({"n": n})
        if n == 10:
            stopping.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    for sock in members:
        got = sorted(sock.recv(WAIT)["echo"] for _ in range(frames))
        assert got == list(range(frames))
    stopping.popen.wait(WAIT)
    assert stopping.returncode == 0, stopping.tail()
    # The kit's graceful stop, not a crash: it said so, finished what it held and exited 0.
    assert "finishing the message in hand" in stopping.log_path.read_text(errors="replace"), stopping.tail()
    site.workers.remove(stopping)
    stopping.stop()
    site.start_worker()


def test_a_daphne_killed_with_sigkill_leaves_rows_and_memberships_the_sweep_removes(site, sockets):
    for _ in range(5):
        join(site, sockets, "d", 1)
    layer = site.layer()
    assert len(layer.group_channels("chat-d")) == 5
    assert site.presence_count("d") == 5
    site.daphnes[1].kill()
    wait_for(lambda: not layer.group_channels("chat-d"), timeout=30, what="memberships swept")
    wait_for(lambda: site.presence_count("d") == 0, timeout=30, what="presence rows swept", step=0.5)


def test_redis_restarted_empty_closes_sockets_with_4503_and_they_reconnect(site, sockets):
    members = [join(site, sockets, "b", 0) for _ in range(10)]
    site.redis.stop()
    site.redis = RedisServer(site.log_dir, port=site.redis.port, name="redis-2").start()
    for sock in members:
        assert close_code(sock, WAIT) == 4503
    back = []
    deadline = time.monotonic() + WAIT
    while len(back) < len(members):
        try:
            back.append(join(site, sockets, "b", 0))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    back[0].send({"say": "again", "n": 1})
    for sock in back:
        assert sock.recv_until(lambda frame: frame.get("n") == 1, timeout=WAIT)["said"] == "again"
