"""Full channels: with the workers stopped and CHANNEL_LAYER_CAPACITY=5, daphne refuses at
once what it cannot queue (HTTP 503, close 1013, and a handshake answered by daphne itself
with when to come back: "server-busy", retry_after, close 4013) instead of hanging, and
serves again once workers drain the backlog."""

import json
import threading

import pytest
import requests
import websocket

from channels1_kit import drain
from tests.integration.clients import next_frame
from tests.integration.faults.conftest import report, start_fault_stack
from tools.processes import wait_until

pytestmark = pytest.mark.integration

CAPACITY = 5


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory):
    stack = start_fault_stack(
        tmp_path_factory.mktemp("backpressure"),
        settings={"CHANNEL_LAYER_CAPACITY": str(CAPACITY)},
        daphnes=1,
        workers=1,
    )
    stack.driver("create_liveblog", "full")
    yield stack
    stack.stop()


def background(target, *args):
    results = []
    thread = threading.Thread(target=lambda: results.append(target(*args)), daemon=True)
    thread.start()
    return thread, results


def get_status(url: str) -> int:
    try:
        return requests.get(url, timeout=90).status_code
    except requests.RequestException as error:
        return repr(error)


def handshake(url: str):
    """The status of a WebSocket handshake: 101 if accepted, else the HTTP status daphne answered."""
    try:
        ws = websocket.create_connection(url, timeout=60)
    except websocket.WebSocketBadStatusException as error:
        return error.status_code
    except Exception as error:
        return repr(error)
    ws.close()
    return 101


def busy_answer(url: str):
    """What daphne says to a handshake when websocket.connect is full: its frame and close code."""
    ws = websocket.create_connection(url, timeout=60)
    try:
        ws.settimeout(10)
        opcode, data = next_frame(ws)
        frame = json.loads(data) if opcode == websocket.ABNF.OPCODE_TEXT else (opcode, data)
        opcode, data = next_frame(ws)
        close = int.from_bytes(data[:2], "big") if opcode == websocket.ABNF.OPCODE_CLOSE else (opcode, data)
        return frame, close
    finally:
        ws.close()


def test_full_channels_answer_503_1013_and_come_back_later_instead_of_hanging(full_stack):
    stack = full_stack
    stream = stack.ws_url("/liveblog/full/stream/")
    health = f"http://127.0.0.1:{stack.daphne_ports[0]}/healthz"
    # Sockets accepted while a worker still runs.
    open_sockets = [websocket.create_connection(stream, timeout=10) for _ in range(2)]

    stack.hold_down("worker", 0)

    # HTTP: CAPACITY requests wait in http.request; the next one is refused with 503.
    waiting = [background(get_status, health) for _ in range(CAPACITY)]
    wait_until(lambda: stack.driver("backlog", "http.request") == CAPACITY, timeout=20, message="http.request full")
    refused_request = get_status(health)

    # WebSocket frames: CAPACITY frames wait in websocket.receive; the next closes the socket with 1013.
    sender = open_sockets[0]
    for n in range(CAPACITY):
        sender.send(f'{{"frame": {n}}}')
    wait_until(lambda: stack.driver("backlog", "websocket.receive") == CAPACITY, timeout=20)
    sender.send('{"frame": "one too many"}')
    sender.settimeout(10)
    opcode, data = next_frame(sender)
    frame_close = int.from_bytes(data[:2], "big") if opcode == websocket.ABNF.OPCODE_CLOSE else (opcode, data)

    # WebSocket handshakes: CAPACITY wait in websocket.connect; the next is told by daphne
    # itself when to come back (a browser cannot read a 503), and no worker hears of it.
    connecting = [background(handshake, stream) for _ in range(CAPACITY)]
    wait_until(lambda: stack.driver("backlog", "websocket.connect") == CAPACITY, timeout=20)
    busy_frame, busy_close = busy_answer(stream)
    assert stack.driver("backlog", "websocket.connect") == CAPACITY

    # The other socket stays open meanwhile: only the one whose frame did not fit is closed.
    assert open_sockets[1].connected

    stack.release("worker", 0)
    for thread, _ in waiting + connecting:
        thread.join(90)
    queued_requests = [result for _, results in waiting for result in results]
    queued_handshakes = [result for _, results in connecting for result in results]

    assert refused_request == 503
    assert frame_close == 1013
    # No worker answering while handshakes want in: told to stay away longer than the 3-10 s of a light load.
    low, _ = drain.BUSY_RETRY_AFTER_SECONDS
    assert busy_frame["error"] == "server-busy", busy_frame
    assert low <= busy_frame["retry_after"] <= drain.BUSY_RETRY_AFTER_MAX_SECONDS, busy_frame
    assert busy_close == 4013
    # What was queued before the channels filled was served once the worker came back
    # (the handshakes within daphne's 5 s connect timeout, the others refused with 403).
    assert queued_requests == [200] * CAPACITY, queued_requests
    assert set(queued_handshakes) <= {101, 403}, queued_handshakes
    assert stack.healthz(0) == 200
    assert handshake(stream) == 101
    assert stack.all_alive()
    for sock in open_sockets:
        sock.close()
    report(
        "backpressure",
        {
            "capacity": CAPACITY,
            "http_request_when_full": refused_request,
            "websocket_frame_when_full_close_code": frame_close,
            "websocket_handshake_when_full": {"frame": busy_frame, "close": busy_close},
            "queued_requests_after_workers_return": queued_requests,
            "queued_handshakes_after_workers_return": queued_handshakes,
        },
        stack.workdir,
    )
