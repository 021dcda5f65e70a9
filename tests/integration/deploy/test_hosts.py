"""Several hosts: two Redis shards, PostgreSQL, two interface servers and two workers, each on a
host of its own (a network namespace, see netns.py), the channel layer sharded over both Redis
hosts with REDIS_URL="redis://A,redis://B". The liveblog and the chat run across them.
"""

import os
import subprocess

import pytest
import redis

from tests.integration.deploy.netns import Network, netns_permitted
from tests.integration.deploy.servers import (
    MARKER,
    PostgresCluster,
    Site,
    remove_unless_kept,
    require,
    shared_tmpdir,
)
from tests.integration.deploy.traffic import check_chat, check_liveblog, seed
from tools.processes import REPO, VENV_BIN, Process, redis_server_binary, wait_for_healthz, wait_for_port

HOSTS = {"redis-a": 11, "redis-b": 12, "db": 13, "web-a": 21, "web-b": 22, "worker-a": 31, "worker-b": 32}
# Ports on the hosts' own addresses; no server of the machine is involved.
REDIS_PORTS = {"redis-a": 7101, "redis-b": 7102}
POSTGRES_PORT = 25432
DAPHNE_PORT = 8000


@pytest.fixture
def hosts():
    require(netns_permitted(), "network namespaces are not permitted here (ip netns add needs root)")
    workdir = shared_tmpdir("deploy-hosts-")
    network = Network(HOSTS)
    processes = []
    postgres = None
    # Redis needs nothing of the site's; the marker still finds it if it outlives the test.
    site_free_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), MARKER: str(workdir)}
    try:
        network.create()
        for host, port in REDIS_PORTS.items():
            address = network.addresses[host]
            args = [redis_server_binary(), "--bind", address, "--port", str(port), "--save", "", "--appendonly", "no"]
            command = [*network.exec(host), *args, "--dir", str(workdir)]
            processes.append(Process(host, command, env=site_free_env, log_dir=workdir))
            wait_for_port(port, host=address, process=processes[-1])
        postgres = PostgresCluster(
            host=network.addresses["db"],
            port=POSTGRES_PORT,
            exec_prefix=network.exec("db"),
            trust_networks=[network.cidr],
        ).start()
        redis_url = ",".join(f"redis://{network.addresses[host]}:{port}/0" for host, port in REDIS_PORTS.items())
        site = Site(
            workdir,
            database_url=postgres.create_database("hosts"),
            redis_url=redis_url,
            allowed_hosts=",".join(network.addresses[host] for host in ("web-a", "web-b")),
        )
        # Run from the test's own host, which reaches the db host over its link.
        site.manage("migrate", "--noinput", "-v", "0")
        for host in ("web-a", "web-b"):
            daphne = [str(VENV_BIN / "daphne"), "-b", network.addresses[host], "-p", str(DAPHNE_PORT)]
            command = [*network.exec(host), *daphne, "project.asgi:channel_layer"]
            processes.append(Process(host, command, env=site.env(), log_dir=workdir))
        for host in ("worker-a", "worker-b"):
            worker = [str(VENV_BIN / "python"), "manage.py", "runworker"]
            processes.append(Process(host, [*network.exec(host), *worker], env=site.env(), log_dir=workdir))
        yield network, site, {process.name: process for process in processes}
    except Exception:
        for process in processes:
            print(f"--- {process.name}\n{process.tail()}")
        raise
    finally:
        for process in reversed(processes):
            process.stop()
        if postgres is not None:
            postgres.stop()
        network.destroy()
        remove_unless_kept(workdir)


def shard_message_counts(network: Network) -> dict:
    """Messages each Redis host carried, from the layer's own statistics in that Redis."""
    counts = {}
    for host, port in REDIS_PORTS.items():
        client = redis.StrictRedis(host=network.addresses[host], port=port, socket_timeout=5)
        counts[host] = int(client.get("asgi-meta:#global#:messages_count") or 0)
    return counts


def test_liveblog_and_chat_across_hosts_with_the_layer_sharded_over_two_redis_hosts(hosts):
    network, site, processes = hosts
    web = {host: f"{network.addresses[host]}:{DAPHNE_PORT}" for host in ("web-a", "web-b")}

    # /healthz asked of each interface server: daphne -> a Redis shard -> a worker host -> back.
    for address in web.values():
        wait_for_healthz(f"http://{address}", timeout=60)
    for host in ("worker-a", "worker-b"):
        processes[host].wait_for_log("Listening on channels", timeout=60)

    # Each server runs in a network namespace of its own, none of them the test's. (Read once
    # they serve: until `ip netns exec` has switched, a process is still in the test's.)
    namespaces = {network.net_namespace_of(process.pid) for process in processes.values()}
    assert len(namespaces) == len(processes)
    assert network.net_namespace_of(os.getpid()) not in namespaces

    seed(site, users=["alice", "bob"], rooms=["hosts"], liveblogs=["hosts"])
    ws_bases = [f"ws://{address}" for address in web.values()]
    check_liveblog(site, "hosts", ws_bases, per_base=2)
    # alice on web-a, bob on web-b: the message crosses interface servers, workers and shards.
    check_chat(f"http://{web['web-a']}", ws_bases, "hosts", {"alice": "alicealice", "bob": "bobbob"})

    # A worker's health check, run on a worker host, answered through the shards.
    health = subprocess.run(
        [*network.exec("worker-a"), str(VENV_BIN / "python"), "manage.py", "worker_health", "--timeout", "20"],
        cwd=REPO,
        env=site.env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert health.returncode == 0, health.stderr

    counts = shard_message_counts(network)
    assert all(count > 0 for count in counts.values()), f"both Redis hosts should carry messages: {counts}"
