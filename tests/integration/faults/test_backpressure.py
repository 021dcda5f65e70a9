"""Full channels: with the workers stopped and CHANNEL_LAYER_CAPACITY=5, daphne refuses at
once what it cannot queue (HTTP 503, handshake 503, close 1013) instead of hanging, and
serves again once workers drain the backlog."""

import threading

import pytest
import requests
import websocket

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


def test_full_channels_answer_503_and_1013_instead_of_hanging(full_stack):
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

    # WebSocket handshakes: CAPACITY wait in websocket.connect; the next is refused with 503.
    connecting = [background(handshake, stream) for _ in range(CAPACITY)]
    wait_until(lambda: stack.driver("backlog", "websocket.connect") == CAPACITY, timeout=20)
    refused_handshake = handshake(stream)

    # The other socket stays open meanwhile: only the one whose frame did not fit is closed.
    assert open_sockets[1].connected

    stack.release("worker", 0)
    for thread, _ in waiting + connecting:
        thread.join(90)
    queued_requests = [result for _, results in waiting for result in results]
    queued_handshakes = [result for _, results in connecting for result in results]

    assert refused_request == 503
    assert frame_close == 1013
    assert refused_handshake == 503
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
            "websocket_handshake_when_full": refused_handshake,
            "queued_requests_after_workers_return": queued_requests,
            "queued_handshakes_after_workers_return": queued_handshakes,
        },
        stack.workdir,
    )
