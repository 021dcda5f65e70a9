"""Knowing when to scale: the channel report (command and /ops/channels) and the health checks.

With the workers stopped, what the sockets send piles up in Redis: the report shows the
backlog and the ChannelFull refusals; started again, the workers drain it and every
message arrives. The health checks tell a dead worker pool from a live one.
"""

import json
import subprocess
import time

import pytest
import requests

from tests.integration.deploy.traffic import CHAT, Listener, is_message, seed
from tools.processes import REPO, VENV_BIN
from tools.site_stack import login_cookie

WORKER_POOLS = ("worker:*", "worker-websocket:*")


def channel_report_command(site) -> dict:
    return json.loads(site.manage("channel_report", "--json", "--interval", "0.5").stdout)


def ops_channels(server, token=None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{server.http}/ops/channels", params=params, headers=headers, timeout=30)


def wait_for_report(read, predicate, what: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = read()
        if predicate(report):
            return report
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}; last report: {report}"
        time.sleep(0.5)


def worker_health(server, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "worker_health", "--timeout", str(timeout)],
        cwd=REPO,
        env=server.site.env(),
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )


def test_ops_channels_needs_the_monitoring_token(server):
    assert ops_channels(server).status_code == 401
    assert ops_channels(server, token="not-the-token").status_code == 401
    refused = ops_channels(server, token=server.site.monitoring_token, interval="60")
    assert refused.status_code == 400
    report = ops_channels(server, token=server.site.monitoring_token, interval="0.2")
    assert report.status_code == 200
    assert {"websocket.receive", "http.request", "worker.health"} <= set(report.json()["channels"])


def test_a_backlog_builds_while_the_workers_are_stopped_and_drains_when_they_start(server, all_programs_running):
    site, deployment, token = server.site, server.deployment, server.site.monitoring_token
    seed(site, rooms=["backlog"])
    alice = Listener(server.ws + CHAT, cookie=login_cookie(server.http, "alice", "alicealice"))
    bob = Listener(server.ws + CHAT, cookie=login_cookie(server.http, "bob", "bobbob"))
    listeners = [alice, bob]
    try:
        for listener in listeners:
            listener.send({"command": "join", "room": "backlog"})
            listener.wait_for(lambda frame: frame.get("join") == "backlog")

        deployment.ctl("stop", *WORKER_POOLS)
        texts = [f"queued {n}" for n in range(40)]
        for text in texts:
            alice.send({"command": "send", "room": "backlog", "message": text})
        # daphne puts each frame on websocket.receive, where no worker takes it.
        report = wait_for_report(
            lambda: ops_channels(server, token=token, interval="0.5").json(),
            lambda r: r["channels"]["websocket.receive"]["backlog"] == len(texts),
            "the 40 frames wait on websocket.receive",
        )
        receive = report["channels"]["websocket.receive"]
        assert receive["consumed_per_second"] == 0
        assert report["backlog"] >= len(texts)
        assert channel_report_command(site)["channels"]["websocket.receive"]["backlog"] == len(texts)
        assert not bob.matching(is_message(texts[0])), "nothing can be delivered with no worker"

        # A channel at capacity (CHANNEL_LAYER_CAPACITY=300 here) refuses sends: ChannelFull.
        full_before = channel_report_command(site)["channels"]["worker.health"]["channel_full_total"]
        refused = site.django(
            "import json\n"
            "from channels import DEFAULT_CHANNEL_LAYER, channel_layers\n"
            "layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer\n"
            "refused = 0\n"
            "for n in range(310):\n"
            "    try:\n"
            "        layer.send('worker.health', {'n': n})\n"
            "    except layer.ChannelFull:\n"
            "        refused += 1\n"
            "print(json.dumps(refused))\n"
        )
        assert refused == 10
        health = channel_report_command(site)["channels"]["worker.health"]
        assert health["backlog"] == 300
        assert health["channel_full_total"] - full_before == 10
        assert health["oldest_message_age"] >= 0

        deployment.ctl("start", *WORKER_POOLS)
        wait_for_report(
            lambda: ops_channels(server, token=token, interval="0.5").json(),
            lambda r: all(r["channels"][name]["backlog"] == 0 for name in ("websocket.receive", "worker.health")),
            "the workers drain both channels",
        )
        for listener in listeners:
            for text in texts:
                listener.wait_for(is_message(text))
            received = [frame["message"] for frame in listener.matching(lambda frame: frame.get("type") == "message")]
            assert received == texts, "in the order sent"
            assert listener.closed is None
    finally:
        for listener in listeners:
            listener.close()


def test_health_checks_tell_a_stopped_worker_pool_from_a_running_one(server, all_programs_running):
    deployment = server.deployment
    daphne_health = f"http://{deployment.daphne_bind}/healthz"

    healthy = worker_health(server, timeout=20)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("ok: worker ")
    # Asked of the daphne pool, /healthz is an http.request that a worker answers.
    assert requests.get(daphne_health, timeout=20).json() == {"status": "ok"}

    deployment.ctl("stop", *WORKER_POOLS)
    unhealthy = worker_health(server, timeout=3)
    assert unhealthy.returncode == 1
    assert "no worker answered on worker.health within 3s" in unhealthy.stderr
    # daphne itself still answers the socket, but no worker produces the page.
    with pytest.raises(requests.Timeout):
        requests.get(daphne_health, timeout=3)

    deployment.ctl("start", *WORKER_POOLS)
    deployment.wait_until_serving()
    assert worker_health(server, timeout=20).returncode == 0
