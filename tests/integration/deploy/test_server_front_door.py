"""One server: deploy/supervisor's pools behind deploy/nginx, as docs/deploying.md sets them up."""

import re
import time

import requests
import websocket

from tests.integration.clients import handshake
from tests.integration.deploy.traffic import check_chat, check_liveblog, liveblog_stream, seed
from tools.processes import children, wait_until

CSS = "/static/admin/css/base.css"


def test_sitectl_starts_every_pool_and_leaves_the_spare_workers_stopped(server):
    deployment = server.deployment
    status = deployment.status()
    assert {name: status.get(name) for name in deployment.expected_running()} == {
        name: "RUNNING" for name in deployment.expected_running()
    }
    assert {name: status.get(name) for name in deployment.spare_names()} == {
        name: "STOPPED" for name in deployment.spare_names()
    }
    # The dedicated pool takes only what --only-channels gives it; the general pool everything.
    # (RUNNING is 2 s up; a worker says what it listens on once Django is set up.)
    listening = re.compile(r"Listening on channels (.*)")
    logs = {name: deployment.var / "log" / f"{name}.log" for name in ("worker-websocket-0", "worker-0")}
    wait_until(
        lambda: all(listening.search(log.read_text()) for log in logs.values()),
        timeout=10,
        interval=0.1,
        message="both workers listening",
    )
    dedicated, general = (logs[name].read_text() for name in ("worker-websocket-0", "worker-0"))
    assert listening.search(dedicated).group(1).split(", ") == [
        "websocket.connect",
        "websocket.disconnect",
        "websocket.receive",
        "worker.health",
    ]
    assert {"http.request", "websocket.receive", "worker.health"} <= set(listening.search(general).group(1).split(", "))


def test_the_liveblog_and_the_chat_work_through_nginx(server):
    seed(server.site, rooms=["front-door"], liveblogs=["front-door"])
    check_liveblog(server.site, "front-door", [server.ws], per_base=4)
    check_chat(server.http, [server.ws], "front-door", {"alice": "alicealice", "bob": "bobbob"})


def test_daphne_sees_the_clients_address_that_nginx_forwards(server):
    """--proxy-headers: behind nginx, daphne takes the client from X-Forwarded-For, not nginx's."""
    seed(server.site, liveblogs=["forwarded"])
    # As if the request reached nginx from 198.51.100.7 through one more proxy; nginx appends
    # its own peer, and daphne takes the first address.
    sock = websocket.create_connection(
        server.ws + liveblog_stream("forwarded"), timeout=10, header=["X-Forwarded-For: 198.51.100.7"]
    )

    def logged() -> bool:
        logs = sorted((server.deployment.var / "log").glob("daphne-*.log"))
        lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
        return any(line.startswith("198.51.100.7:0 ") and "WSCONNECT /liveblog/forwarded/" in line for line in lines)

    try:
        wait_until(logged, timeout=10, interval=0.1, message="a daphne logs the forwarded client")
    finally:
        sock.close()


def test_nginx_serves_the_collected_static_files_and_sends_pages_to_gunicorn(server):
    static = requests.get(server.http + CSS, timeout=10)
    assert static.status_code == 200
    assert static.content == (server.site.static_root / "admin" / "css" / "base.css").read_bytes()
    # Only the static location adds it: nginx answered from disk, gunicorn never saw it.
    assert static.headers["X-Served-By"] == "nginx-static"
    assert "max-age=604800" in static.headers["Cache-Control"]

    page = requests.get(server.http + "/liveblog/?from=nginx", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "X-Served-By" not in page.headers
    gunicorn_log = server.deployment.var / "log" / "gunicorn.log"
    wait_until(
        lambda: "GET /liveblog/?from=nginx" in gunicorn_log.read_text(),
        timeout=10,
        interval=0.1,
        message="gunicorn logs the page",
    )

    # gunicorn would serve the same file (WhiteNoise), but without nginx's header.
    direct = requests.get(f"http://{server.deployment.gunicorn_bind}{CSS}", timeout=10)
    assert direct.status_code == 200
    assert "X-Served-By" not in direct.headers


def gunicorn_workers(master: int) -> set:
    return set(children(master))


def test_gunicorn_reloads_on_hup_and_keeps_serving(server):
    """New code for the pages: `sitectl signal HUP gunicorn` replaces its workers, not the master."""
    deployment = server.deployment
    master = deployment.pids(["gunicorn"])["gunicorn"]
    before = gunicorn_workers(master)
    assert len(before) == 2

    deployment.ctl("signal", "HUP", "gunicorn")
    wait_until(
        lambda: len(gunicorn_workers(master)) == 2 and not gunicorn_workers(master) & before,
        timeout=10,
        interval=0.1,
        message="new workers",
    )

    assert deployment.pids(["gunicorn"])["gunicorn"] == master
    assert requests.get(server.http + "/liveblog/", timeout=10).status_code == 200


def test_a_browsers_login_through_nginx_passes_djangos_origin_check(server):
    """Browsers send Origin with a form's POST, and Django (4.0+) compares it with the Host it was
    given, port included, even over plain HTTP: nginx must pass the Host the browser asked for."""
    session = requests.Session()
    session.get(server.http + "/accounts/login/", timeout=10).raise_for_status()
    response = session.post(
        server.http + "/accounts/login/",
        data={"username": "alice", "password": "alicealice", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Origin": server.http, "Referer": server.http + "/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:2000]
    assert response.headers["Location"] == "/chat/"


def test_nginx_holds_one_address_to_its_handshake_budget_with_429_and_retry_after(server):
    """deploy/nginx's limit_req for the WebSocket paths: 200 handshakes at once, then 10 a second, per
    address, as daphne budgets an address (the deployment lifts daphne's, so that nginx answers)."""
    seed(server.site, liveblogs=["budget"])
    url = server.ws + liveblog_stream("budget")
    started = time.monotonic()
    accepted = 0
    while True:
        status, headers = handshake(url)
        if status != 101:
            break
        accepted += 1
        assert accepted <= 200 + 10 * (time.monotonic() - started) + 1
    assert status == 429
    assert headers["Retry-After"] == "10"
    assert accepted >= 200
    # nginx refused it, not daphne: it logs each request it limits.
    error_log = (server.nginx.prefix / "error.log").read_text(errors="replace")
    assert re.search(r'limiting requests, excess: [\d.]+ by zone "websocket_handshakes"', error_log)
    # It refills: a handshake a tenth of a second later passes again.
    wait_until(lambda: handshake(url)[0] == 101, timeout=5, interval=0.2, message="a handshake through again")
