"""Redis Sentinel for real: Debian's redis-server as one master, one replica and three sentinels
(redis-server --sentinel, quorum 2), on free loopback ports, and `SENTINEL FAILOVER` under traffic.

The layer's both paths (redis-py for workers and daphne's sends, txredisapi for daphne's receive)
find the master through the sentinels and follow the failover without being restarted; daphne's
restart check tells a failover (another server that kept the data: sockets stay open) from a Redis
that restarted empty (sockets closed with 4503); and the Procfile's processes under production
settings keep a liveblog page up across the failover, with nothing persisted lost.
"""

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from channels1_kit.redis_urls import SentinelConnectionPool, parse, split_urls
from tests.fanout_layer.support import unique_prefixes
from tests.integration.test_managed_redis import debian_redis_server, site_for
from tools.processes import RedisServer, SentinelWatch, free_port, wait_until

SERVICE = "mymaster"
DAPHNE = "daphne.response.SeNtInEl!"
# How long the sentinels may take to name the promoted replica after SENTINEL FAILOVER.
SWITCH_WITHIN = 15.0

# The most a replica may trail its master by, on this loaded 2-core machine.
REPLICATION_LAG = 0.5


class SentinelGroup:
    """A master, a replica and three sentinels watching them, all private to one test."""

    def __init__(self, workdir: Path):
        binary = debian_redis_server()
        self.workdir = workdir
        self.binary = binary
        # A replica's first sync starts at once, not after redis-server's 5 s wait for more replicas.
        fast_sync = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(workdir, name="master", binary=binary, extra_args=fast_sync).start()
        self.replica = RedisServer(
            workdir, name="replica", binary=binary, replicaof=self.master.port, extra_args=fast_sync
        ).start()
        # down-after 3 s: SENTINEL FAILOVER does not wait for it, and a restart of the master that
        # takes a fraction of a second must not set off a failover of its own.
        watch = SentinelWatch(SERVICE, self.master.port, quorum=2, down_after_ms=3000, failover_timeout_ms=5000)
        self.sentinels = [
            RedisServer(workdir, name=f"sentinel{n}", binary=binary, sentinel=watch).start() for n in range(3)
        ]
        self.wait_until_ready()

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def sentinel(self, n: int = 0) -> redis.Redis:
        # RESP2: the sentinels' replies as lists of field, value (redis-py 8 speaks RESP3 by default).
        return redis.Redis(port=self.sentinels[n].port, socket_timeout=5, protocol=2)

    def master_port(self) -> int:
        return int(self.sentinel().execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)[1])

    def wait_until_ready(self, timeout: float = 30) -> None:
        """Until the replica is in sync and every sentinel knows it and the two other sentinels."""
        deadline = time.monotonic() + timeout
        while True:
            link = redis.Redis(port=self.replica.port).info("replication").get("master_link_status")
            ready = link == "up"
            for n in range(3):
                replicas = self.sentinel(n).execute_command("SENTINEL", "replicas", SERVICE)
                others = self.sentinel(n).execute_command("SENTINEL", "sentinels", SERVICE)
                flags = [dict(zip(entry[::2], entry[1::2], strict=True)).get(b"flags", b"") for entry in replicas]
                ready &= len(others) == 2 and any(flag == b"slave" for flag in flags)
            if ready:
                return
            assert time.monotonic() < deadline, "the sentinels did not find each other and the replica"
            time.sleep(0.2)

    def failover(self) -> tuple:
        """SENTINEL FAILOVER; returns (seconds until the sentinels named the replica, its port)."""
        old = self.master_port()
        started = time.monotonic()
        assert self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE) in (b"OK", True)
        while (new := self.master_port()) == old:
            assert time.monotonic() - started < SWITCH_WITHIN, "no switch of master"
            time.sleep(0.02)
        return time.monotonic() - started, new

    def kill_master(self) -> tuple:
        """SIGKILL the master; returns (seconds until the sentinels named the replica, its port)."""
        started = time.monotonic()
        self.master.process.kill()
        while (new := self.master_port()) == self.master.port:
            assert time.monotonic() - started < SWITCH_WITHIN + 5, "no switch of master"
            time.sleep(0.02)
        return time.monotonic() - started, new

    def server_on(self, port: int) -> RedisServer:
        return self.master if self.master.port == port else self.replica

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()


@pytest.fixture
def group(tmp_path) -> Iterator[SentinelGroup]:
    made = SentinelGroup(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_a_sentinel_url_is_one_shard_of_redis_url():
    sentinels = "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3/mymaster/0?sentinel_password=spw"

    assert split_urls(f"{sentinels}, redis://other:6379/0") == [sentinels, "redis://other:6379/0"]
    url = parse(split_urls(sentinels)[0])
    assert url.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26379))
    assert (
        str(url)
        == "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0?sentinel_password=***"
    )


def test_both_paths_reach_the_master_the_sentinels_name(group, layers, reactor):
    layer = layers(group.url)

    layer.send("websocket.receive", {"text": "to a worker"})
    assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"text": "to a worker"})
    layer.group_add("room", DAPHNE + "a")
    layer.send_group("room", {"text": "to the room"})
    assert reactor.call(layer.receive_twisted, [DAPHNE]) == (DAPHNE + "a", {"text": "to the room"})
    # The group went to the master, and replicated.
    keys = set(redis.Redis(port=group.master.port).keys(layer.prefix + "*"))
    assert keys
    deadline = time.monotonic() + 5
    while set(redis.Redis(port=group.replica.port).keys(layer.prefix + "*")) != keys:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["sentinel-failover", "master-killed"])
def test_both_paths_follow_a_failover_under_traffic(group, layers, reactor, capsys, how):
    """A sender, a worker's receive and daphne's receive_twisted, each its own layer, through a failover:
    SENTINEL FAILOVER (the old master stays up, writable until demoted), or the master SIGKILLed."""
    # Three processes of one site: one prefix.
    prefixes = unique_prefixes()
    sender, worker, daphne = (layers(group.url, **prefixes) for _ in range(3))
    daphne.group_add("room", DAPHNE + "a")
    sent: dict = {}  # n -> monotonic time its send returned
    failed_sends = []
    to_worker: dict = {}
    to_daphne: dict = {}
    stop = threading.Event()
    errors = []

    def send_all():
        n = 0
        while not stop.is_set():
            try:
                sender.send("websocket.receive", {"n": n})
                sender.send_group("room", {"n": n})
                sent[n] = time.monotonic()
            except redis.exceptions.ConnectionError as error:
                failed_sends.append((n, str(error)))
            n += 1
            time.sleep(0.02)

    def receive_as_worker():
        while not stop.is_set():
            try:
                channel, message = worker.receive(["websocket.receive"], block=True)
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)  # as channels1_kit.outages.OutageTolerantLayer waits
                continue
            if channel is not None:
                to_worker.setdefault(message["n"], time.monotonic())

    def receive_as_daphne():
        while not stop.is_set():
            try:
                channel, message = reactor.call(daphne.receive_twisted, [DAPHNE], timeout=30)
            except Exception as error:  # noqa: BLE001 - daphne logs and carries on; the test says
                errors.append(error)
                continue
            if channel is not None:
                to_daphne.setdefault(message["n"], time.monotonic())

    threads = [
        threading.Thread(target=target, daemon=True) for target in (send_all, receive_as_worker, receive_as_daphne)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        assert to_worker and to_daphne, "no traffic before the failover"
        failover_at = time.monotonic()
        if how == "sentinel-failover":
            switch_seconds, new_master = group.failover()
            # Past the moment the sentinels turn the old master into a replica (about ten seconds).
            time.sleep(14)
        else:
            switch_seconds, new_master = group.kill_master()
            time.sleep(5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(40)
    assert new_master == group.replica.port
    # What was sent lately is still on its way: drain it.
    deadline = time.monotonic() + 5
    while (set(sent) - set(to_worker) or set(sent) - set(to_daphne)) and time.monotonic() < deadline:
        try:
            channel, message = worker.receive(["websocket.receive"], block=False)
            if channel is not None:
                to_worker.setdefault(message["n"], time.monotonic())
            channel, message = reactor.call(daphne.receive_twisted, [DAPHNE], timeout=30)
            if channel is not None:
                to_daphne.setdefault(message["n"], time.monotonic())
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)

    assert not errors, errors
    after = [n for n, at in sent.items() if at > failover_at + switch_seconds]
    assert after, "nothing was sent after the switch"
    lost_worker = sorted(set(sent) - set(to_worker))
    lost_daphne = sorted(set(sent) - set(to_daphne))
    first_worker = min(to_worker[n] for n in after if n in to_worker) - failover_at
    first_daphne = min(to_daphne[n] for n in after if n in to_daphne) - failover_at

    def longest_gap(received: dict) -> float:
        times = sorted(received.values())
        return max(later - earlier for earlier, later in zip(times, times[1:], strict=False))

    with capsys.disabled():
        print(
            f"\nlongest pause in deliveries: {longest_gap(to_worker):.2f}s (worker), "
            f"{longest_gap(to_daphne):.2f}s (daphne)"
            f"\nfailover: sentinels switched after {switch_seconds:.2f}s; first message sent after the switch "
            f"delivered at +{first_worker:.2f}s (worker), +{first_daphne:.2f}s (daphne); {len(sent)} sent, "
            f"{len(failed_sends)} sends refused, lost: {len(lost_worker)} (worker) {len(lost_daphne)} (daphne), "
            f"sent at +{[round(sent[n] - failover_at, 2) for n in lost_worker + lost_daphne]}s"
        )
    # Every send the layer accepted was delivered, on both paths, but for those sent in the moment
    # between the switch and the processes leaving the old master, which stays writable until a
    # sentinel demotes it (Redis replicates asynchronously): at most SentinelConnectionPool's
    # RECHECK_SECONDS of traffic, and none before the failover began or after that moment.
    window_end = failover_at + switch_seconds + SentinelConnectionPool.RECHECK_SECONDS + 0.5
    # Replication is asynchronous: a send the master accepted just before it was stopped or killed may
    # not have reached the replica yet (seen: one sent 0.8 ms before the kill, on a loaded machine).
    window_start = failover_at - REPLICATION_LAG
    if how == "master-killed":
        # A dead master takes no writes: only what it had not yet passed on to its replica when killed.
        window_end = failover_at
    for lost in (lost_worker, lost_daphne):
        assert all(window_start <= sent[n] <= window_end for n in lost), [(n, sent[n] - failover_at) for n in lost]
    assert first_worker < switch_seconds + 3 and first_daphne < switch_seconds + 3
    # Every message sent after the switch went to the new master, whichever path.
    if how == "sentinel-failover":
        assert redis.Redis(port=group.master.port).execute_command("ROLE")[0] == b"slave"


def test_a_failover_keeps_daphnes_sockets_open_and_an_empty_restart_closes_them(group, layers, settings):
    from twisted.internet import task

    from channels1_kit.interface import InterfaceLayer
    from channels1_kit.websocket import CLOSE_RECONNECT

    clock = task.Clock()
    layer = layers(group.url)
    interface = InterfaceLayer(layer, clock=clock)
    interface.send("websocket.connect", {"reply_channel": DAPHNE + "a", "path": "/"})
    interface._start([DAPHNE])  # what daphne's first receive_twisted does: the first heartbeat, now
    first_run_ids = list(interface._run_ids)
    # The marker replicates before the failover (the replica is in sync within milliseconds).
    marker = f"{layer.prefix}:daphne-marker:{DAPHNE}"
    deadline = time.monotonic() + 5
    while not redis.Redis(port=group.replica.port).exists(marker):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    group.failover()

    def a_beat_reached_the_new_master() -> bool:
        # redis-py's Sentinel takes the new master once the sentinels' state says so (a moment
        # after SENTINEL get-master-addr-by-name), and the pool asks again every RECHECK_SECONDS.
        clock.advance(settings.CHANNELS1_KIT_HEARTBEAT_SECONDS)
        return interface._run_ids != first_run_ids

    wait_until(a_beat_reached_the_new_master, timeout=10, message="a heartbeat on the new master")
    assert interface.open_sockets == {DAPHNE + "a"}
    assert not interface._ready

    # Now the master (the promoted replica) restarts empty, on the same port, before any sentinel
    # takes it for down: its replica resyncs from it, empty too.
    current = group.server_on(group.master_port())
    current.stop()
    current.replicaof = None  # It comes back as the master it was, with nothing.
    current.start()
    for _ in range(20):
        clock.advance(settings.CHANNELS1_KIT_HEARTBEAT_SECONDS)
        if interface._ready:
            break
        time.sleep(0.25)  # A heartbeat that found it still starting; the next one tries again.
    assert list(interface._ready) == [(DAPHNE + "a", {"close": CLOSE_RECONNECT})]
    assert interface.open_sockets == set()


def test_the_procfile_keeps_a_liveblog_page_up_across_a_failover(group, tmp_path, capsys):
    """daphne and runworker under production settings, REDIS_URL naming the sentinels, through SENTINEL FAILOVER."""
    from tests.integration.deploy.servers import kill_marked, processes_marked, procfile_release, procfile_start
    from tests.integration.deploy.traffic import Listener, check_chat, liveblog_stream, seed

    site = site_for(tmp_path, group.url)
    port = free_port()
    env_file = site.write_env_file(tmp_path / ".env", PORT=str(port), SOCKET_HEARTBEAT_SECONDS="1")
    env = site.bare_env()
    web = None
    listener = None
    try:
        procfile_release(env_file, env)
        web, base, ws = procfile_start(env_file, env, tmp_path, port=port)
        seed(site, users=["alice", "bob"], rooms=["sentinel"], liveblogs=["sentinel"])
        listener = Listener(ws + liveblog_stream("sentinel"))
        time.sleep(1)

        # One admin process publishes a post every 0.2 s through the failover, as the admin does.
        publishing = {}

        def publish_all():
            publishing["ids"] = site.django(
                "import json, time\n"
                "from liveblog import selectors, services\n"
                "blog = selectors.liveblog_get(slug='sentinel')\n"
                "ids, started = [], time.monotonic()\n"
                "while time.monotonic() - started < 18:\n"
                "    try:\n"
                "        ids.append(services.post_create(liveblog=blog, body=f'post {len(ids)}').id)\n"
                "    except Exception as error:\n"
                "        print('refused:', error)\n"
                "    time.sleep(0.2)\n"
                "print(json.dumps(ids))\n"
            )

        publisher = threading.Thread(target=publish_all, daemon=True)
        publisher.start()
        # The first posts arrive before the failover.
        listener.wait_for(lambda frame: frame.get("type") == "post.created", timeout=30)
        failover_at = time.monotonic()
        switch_seconds, _ = group.failover()
        publisher.join(60)
        assert "ids" in publishing, "the publishing process did not finish"
        ids = publishing["ids"]
        # What a page does on reconnecting: it asks for what it missed since the last post it saw.
        time.sleep(2)
        live = {frame["post"]["id"] for frame in listener.matching(lambda frame: frame.get("type") == "post.created")}
        assert listener.closed is None, f"the page was closed under it: {listener.closed}"
        missed_live = sorted(set(ids) - live)
        catch_up = Listener(ws + liveblog_stream("sentinel", since=min(ids) - 1))
        try:
            deadline = time.monotonic() + 20
            while True:
                caught = {
                    frame["post"]["id"]
                    for frame in catch_up.matching(lambda frame: frame.get("type") in ("post.created", "post"))
                    if "post" in frame
                }
                if set(ids) <= caught or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            catch_up.close()
        with capsys.disabled():
            print(
                f"\nprocfile failover: switch after {switch_seconds:.2f}s; {len(ids)} posts published, "
                f"{len(missed_live)} missed live, {len(set(ids) - caught)} missing after catching up"
            )
        assert set(ids) <= caught, sorted(set(ids) - caught)
        # Posts published well after the switch reached the open page live.
        assert live & set(ids[-10:]), "no post reached the page live after the failover"
        # The chat works after the failover too, through the new master.
        check_chat(base, [ws], "sentinel", {"alice": "alicealice", "bob": "bobbob"})
        output = web.log_path.read_text(errors="replace")
        assert "Redis restarted and lost every group membership" not in output, output[-3000:]
        assert "failover?" in output, "daphne's heartbeat never saw the new master"
        listener.close()
        listener = None
        web.send_signal(signal.SIGTERM)
        web.popen.wait(60)
        assert processes_marked(site.marker) == []
        assert time.monotonic() - failover_at < 120
    finally:
        if listener is not None:
            listener.close()
        if web is not None:
            web.stop()
        kill_marked(site.marker)


def test_no_sentinel_answering_is_said_once_on_daphnes_path_naming_the_url(layers, reactor, caplog):
    import logging

    ports = [free_port(), free_port()]
    layer = layers(f"redis+sentinel://:datapw@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/{SERVICE}/0")

    with caplog.at_level(logging.INFO, logger="fanout_layer"):
        for _ in range(3):
            assert reactor.call(layer.receive_twisted, [DAPHNE]) == (None, None)
    lines = [record.getMessage() for record in caplog.records if record.name == "fanout_layer"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Redis shard 0 (redis+sentinel://:***@127.0.0.1:{ports[0]},")
    assert f"no sentinel named the master of '{SERVICE}'" in lines[0] and "datapw" not in lines[0]
    with pytest.raises(redis.exceptions.ConnectionError, match="no sentinel named the master"):
        layer.send("websocket.receive", {"text": "lost"})
