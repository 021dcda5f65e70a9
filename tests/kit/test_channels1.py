"""All of Channels 1.1.8 on the runtime running pytest (Django 2.2, 5.2 or 6.1), not only what the
site uses: routing with route_class and include, the generic consumers and the demultiplexer,
data binding, channels.test, the delay server (channels.delay migrated, rundelay delivering
through Redis, and rows a Django 2.2 process wrote delivered after the upgrade), runserver and
runworker's --only-channels / --exclude-channels.

The site is tests/kit/channels1; every piece that is a process runs as one (redis-server,
daphne, runworker, rundelay, runserver), from this interpreter's environment, so the loader
under test is the one that starts them. Nothing replaces the channel layer.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
import requests

from tests.integration.clients import Socket
from tests.support.prerequisites import require
from tools.processes import REPO, VENV_BIN, Cluster, Process, RedisServer, free_port, wait_for_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SETTINGS = "tests.kit.channels1.settings"
PREFIX = "channels1-site:"
# An upper bound for any one reply, not an expectation of speed.
WAIT = 20.0
# The table channels.delay has always used (its old label's), where pending messages are.
DELAY_TABLE = "channels.delay_delayedmessage"
# The runtime a legacy site starts from (make test-kit-django22 builds it; .ci/run before the others).
DJANGO22_PYTHON = REPO / ".venv-django22" / "bin" / "python"


class Channels1Site(Cluster):
    """Redis and the SQLite file of tests/kit/channels1; daphnes, workers and the other commands
    (rundelay, runserver) are started by the tests that need them, and stopped with the site."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.log_dir)
        self.daphnes: list[Process] = []
        # runworker, rundelay, runserver: every manage.py process.
        self.workers: list[Process] = []

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS,
            CHANNELS1_SITE_DIR=str(self.workdir),
            REDIS_URL=self.redis.url,
            PYTHONUNBUFFERED="1",
            **extra,
        )
        # Whatever the calling shell set for the loader, the site runs the way it is deployed.
        env.pop("CHANNELS1_KIT_LOADER", None)
        return env

    def django(self, *args: str, python: Path | str = sys.executable) -> subprocess.CompletedProcess:
        """A management command run to its end (migrate, shell -c), by python's Django."""
        result = subprocess.run(
            [str(python), "-m", "django", *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"django-admin {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def manage(self, name: str, *args: str, **extra: str) -> Process:
        """A management command as a long-running process of the site."""
        process = Process(name, [sys.executable, "-m", "django", *args], env=self.env(**extra), log_dir=self.log_dir)
        self.workers.append(process)
        return process

    def start_daphne(self) -> int:
        port = free_port()
        daphne = Process(
            f"daphne-{len(self.daphnes)}",
            [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "tests.kit.channels1.asgi:channel_layer"],
            env=self.env(),
            log_dir=self.log_dir,
        )
        self.daphnes.append(daphne)
        wait_for_port(port, process=daphne)
        return port

    def layer(self, prefix: str = PREFIX):
        from fanout_layer import FanoutRedisChannelLayer

        return FanoutRedisChannelLayer(hosts=[self.redis.url], prefix=prefix)

    def sql(self, query: str) -> list:
        with sqlite3.connect(self.workdir / "db.sqlite3", timeout=20) as db:
            return db.execute(query).fetchall()


def receive(layer, channel: str, *, timeout: float = WAIT) -> dict:
    """The next message on channel, through Redis (a blocking receive waits a few seconds at most)."""

    def take():
        name, message = layer.receive([channel], block=True)
        return message if name is not None else None

    return wait_until(take, timeout=timeout, interval=0, message=f"a message on {channel}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Channels1Site]:
    channels1 = Channels1Site(tmp_path_factory.mktemp("channels1-site"))
    try:
        channels1.redis.start()
        channels1.django("migrate", "--noinput", "-v", "0")
        yield channels1
    except BaseException:
        print(channels1.logs())
        raise
    finally:
        channels1.stop()


@pytest.fixture(scope="module")
def daphne_port(site) -> int:
    """One daphne and one runworker of the site, for the pieces a socket reaches."""
    site.manage("worker", "runworker")
    port = site.start_daphne()
    wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/hello/", timeout=5).status_code == 200,
        timeout=60,
        message="a page through daphne and the worker",
    )
    return port


@pytest.fixture
def sockets() -> Iterator:
    opened: list[Socket] = []

    def open_(url: str) -> Socket:
        sock = Socket(url, timeout=WAIT)
        opened.append(sock)
        return sock

    yield open_
    for sock in opened:
        if sock.connected:
            sock.close()


# -- routing, generic consumers, the demultiplexer, data binding: daphne + runworker ----------------


def test_route_class_mounts_a_generic_json_consumer(site, daphne_port, sockets):
    sock = sockets(f"ws://127.0.0.1:{daphne_port}/json/")
    sock.send({"n": 1})
    reply = sock.recv(WAIT)
    assert reply["echo"] == {"n": 1}
    assert reply["worker"] in {worker.pid for worker in site.workers}


def test_include_and_path_kwargs_route_to_a_function_consumer(daphne_port, sockets):
    sock = sockets(f"ws://127.0.0.1:{daphne_port}/named/ada/")
    sock.send("hi")
    assert sock.recv(WAIT) == {"hello": "ada", "text": "hi"}


def test_the_demultiplexer_answers_each_stream_through_its_multiplexer(daphne_port, sockets):
    sock = sockets(f"ws://127.0.0.1:{daphne_port}/demux/")
    sock.send({"stream": "echo", "payload": {"x": 1}})
    assert sock.recv(WAIT) == {"stream": "echo", "payload": {"echo": {"x": 1}}}


def test_data_binding_creates_from_a_frame_and_broadcasts_every_save(site, daphne_port, sockets):
    watcher = sockets(f"ws://127.0.0.1:{daphne_port}/demux/")
    creator = sockets(f"ws://127.0.0.1:{daphne_port}/demux/")
    # Inbound: a frame on the binding's stream creates the row, in the worker.
    creator.send({"stream": "things", "payload": {"action": "create", "data": {"name": "kettle"}}})
    created = watcher.recv(WAIT)
    assert created["stream"] == "things"
    assert created["payload"]["action"] == "create"
    assert created["payload"]["data"] == {"name": "kettle"}
    assert created["payload"]["model"] == "things.thing"
    pk = created["payload"]["pk"]
    assert site.sql(f"select name from things_thing where id = {int(pk)}") == [("kettle",)]
    # Outbound from any process: a save in a manage.py shell reaches the group through Redis.
    site.django(
        "shell",
        "-c",
        "from tests.kit.channels1.things.models import Thing;"
        f"thing = Thing.objects.get(pk={pk}); thing.name = 'teapot'; thing.save()",
    )
    updated = watcher.recv_until(lambda frame: frame["payload"]["action"] == "update", timeout=WAIT)
    assert updated["payload"]["data"] == {"name": "teapot"}
    assert updated["payload"]["pk"] == pk


# -- runworker --only-channels / --exclude-channels ---------------------------------------------------


def test_runworker_only_and_exclude_channels_split_the_channels(site):
    # A layer prefix of their own, so no other worker of the site takes these channels.
    prefix = "channels1-only:"
    only = site.manage("worker-only-a", "runworker", "--only-channels", "probe.a", CHANNELS1_SITE_PREFIX=prefix)
    rest = site.manage("worker-not-a", "runworker", "--exclude-channels", "probe.a", CHANNELS1_SITE_PREFIX=prefix)
    layer = site.layer(prefix)
    reply = layer.new_channel("probe.reply?")
    # No need to wait for them to listen: the messages wait in Redis for the worker that takes them.
    answered = {}
    for n in range(6):
        channel = "probe.a" if n % 2 == 0 else "probe.b"
        layer.send(channel, {"reply": reply})
        message = receive(layer, reply)
        answered.setdefault(message["channel"], set()).add(message["worker"])
    assert answered == {"probe.a": {only.pid}, "probe.b": {rest.pid}}


# -- channels.test, in this process ---------------------------------------------------------------


def test_channels_test_drives_the_generic_consumers_in_memory():
    from channels.routing import route_class
    from channels.test import ChannelTestCase, WSClient, apply_routes

    from tests.kit.channels1.generic import EchoDemultiplexer, EchoJson

    class Case(ChannelTestCase):
        def runTest(self):
            with apply_routes([route_class(EchoJson, path=r"^/json/$"), route_class(EchoDemultiplexer, path=r"^/d/$")]):
                client = WSClient()
                client.send_and_consume("websocket.connect", path="/json/")
                client.send_and_consume("websocket.receive", text={"n": 2}, path="/json/")
                assert client.receive()["echo"] == {"n": 2}
                demux = WSClient()
                demux.send_and_consume("websocket.connect", path="/d/")
                demux.send_and_consume("websocket.receive", text={"stream": "echo", "payload": {"y": 3}}, path="/d/")
                assert demux.receive() == {"stream": "echo", "payload": {"echo": {"y": 3}}}

    result = Case().run()
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 1


# -- runserver ----------------------------------------------------------------------------------


def test_runserver_serves_pages_and_sockets_with_its_own_worker(site):
    port = free_port()
    # Channels 1's own runserver: daphne and a worker thread in one process, on the site's layer.
    server = site.manage(
        "runserver", "runserver", "--noreload", f"127.0.0.1:{port}", CHANNELS1_SITE_PREFIX="channels1-runserver:"
    )
    wait_for_port(port, process=server, timeout=60)
    page = wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/hello/", timeout=5), timeout=WAIT, message="a page"
    )
    assert page.status_code == 200 and page.json()["pid"] == server.pid
    sock = Socket(f"ws://127.0.0.1:{port}/json/", timeout=WAIT)
    try:
        sock.send({"n": 4})
        reply = sock.recv(WAIT)
        assert reply == {"echo": {"n": 4}, "worker": server.pid}
    finally:
        sock.close()


# -- the delay server ---------------------------------------------------------------------------


def delayed_rows(site: Channels1Site) -> int:
    return site.sql(f'select count(*) from "{DELAY_TABLE}"')[0][0]


def test_channels_delay_migrates_into_its_own_table_and_its_models_match(site):
    tables = {name for (name,) in site.sql("select name from sqlite_master where type = 'table'")}
    assert DELAY_TABLE in tables
    # The model and its migrations agree: nothing to make, nothing left to apply.
    assert "No changes detected" in site.django("makemigrations", "--check", "--dry-run").stdout
    plan = site.django("migrate", "--plan").stdout
    assert "No planned migration operations" in plan, plan


def test_the_loader_relabels_channels_delay_only_where_a_dotted_label_is_refused(site):
    """Django 3.2+ refuses the label "channels.delay" at start-up; there the loader labels it
    channels_delay and keeps its table. On Django 2.2 it leaves the app as released."""
    code = (
        "import json, django; django.setup()\n"
        "from django.apps import apps\n"
        "import channels1_kit.loader as loader\n"
        "from channels.delay.models import DelayedMessage\n"
        "print(json.dumps([apps.get_containing_app_config('channels.delay.models').label,"
        " DelayedMessage._meta.db_table, loader.app_labels_must_be_identifiers(),"
        " sorted(name for name, _ in loader.supplied if name.startswith('channels.delay'))]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=site.env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    label, table, refused, supplied = json.loads(result.stdout.splitlines()[-1])
    assert refused is (django.VERSION >= (3, 2))
    assert table == DELAY_TABLE
    if refused:
        assert label == "channels_delay"
        assert supplied == ["channels.delay.apps", "channels.delay.models"]
    else:
        assert label == "channels.delay"
        assert supplied == []


def test_rundelay_delivers_a_delayed_message_through_redis(site):
    prefix = "channels1-delay:"
    site.manage("rundelay", "rundelay", "--sleep", "0.2", CHANNELS1_SITE_PREFIX=prefix)
    layer = site.layer(prefix)
    sent = time.monotonic()
    # rundelay may not listen yet: the message waits in Redis, and its delay counts from when it is taken.
    # As Channels 1 documents it: a message for asgi.delay naming the channel, the content and the delay in ms.
    layer.send("asgi.delay", {"channel": "delayed.here", "content": {"n": 5}, "delay": 1500})
    assert receive(layer, "delayed.here") == {"n": 5}
    assert time.monotonic() - sent >= 1.4
    # Sent, then deleted by rundelay.
    wait_until(lambda: delayed_rows(site) == 0, timeout=WAIT, message="the delivered row deleted")


def test_rows_a_django_22_site_wrote_are_delivered_after_the_upgrade(tmp_path):
    """A site on Django 2.2 (its label channels.delay) migrated and holds pending messages; this
    runtime migrates the same file (the new label's migration counts as applied: the table is
    kept) and its rundelay delivers them. On Django 2.2 itself, a second 2.2 process does."""
    require(DJANGO22_PYTHON.exists(), f"no {DJANGO22_PYTHON}: run `make test-kit-django22` first")
    old = Channels1Site(tmp_path)
    try:
        old.redis.start()
        old.django("migrate", "--noinput", "-v", "0", python=DJANGO22_PYTHON)
        # Statements on lines of their own: Django 2.2's shell runs -c with separate globals and locals.
        write = (
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from channels.delay.models import DelayedMessage\n"
            "due = timezone.now() - timedelta(seconds=1)\n"
            "for n in range(3):\n"
            "    DelayedMessage.objects.create(channel_name='upgraded.here', content='{\"n\": %d}' % n, due_date=due)\n"
        )
        old.django("shell", "-c", write, python=DJANGO22_PYTHON)
        assert old.sql("select app from django_migrations where name = '0001_initial' and app like 'channels%'") == [
            ("channels.delay",)
        ]
        assert delayed_rows(old) == 3

        old.django("migrate", "--noinput", "-v", "0")
        assert delayed_rows(old) == 3
        prefix = "channels1-upgrade:"
        old.manage("rundelay", "rundelay", "--sleep", "0.2", CHANNELS1_SITE_PREFIX=prefix)
        layer = old.layer(prefix)
        got = sorted(receive(layer, "upgraded.here")["n"] for _ in range(3))
        assert got == [0, 1, 2]
        wait_until(lambda: delayed_rows(old) == 0, timeout=WAIT, message="the delivered rows deleted")
    except BaseException:
        print(old.logs())
        raise
    finally:
        old.stop()
