"""channels1_kit.outages: a runworker's receive that waits out Redis instead of ending the process."""

import pytest
import redis

from channels1_kit.outages import LONGEST_PAUSE, OutageTolerantLayer, tolerate_redis_outages


class FlakyLayer:
    """Fails its first `failures` blocking receives, then hands out a message."""

    router = "the router"

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = []

    def receive_many(self, channels, block=False):
        self.calls.append(block)
        if self.failures:
            self.failures -= 1
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
        return "websocket.receive", {"text": "{}"}


def test_a_blocking_receive_waits_out_redis_errors_with_a_growing_pause():
    pauses = []
    layer = OutageTolerantLayer(FlakyLayer(failures=5), sleep=pauses.append)
    results = [layer.receive_many(["websocket.receive"], block=True) for _ in range(6)]
    assert results == [(None, None)] * 5 + [("websocket.receive", {"text": "{}"})]
    assert pauses == [0.5, 1.0, 2.0, LONGEST_PAUSE, LONGEST_PAUSE]
    assert layer.outages == 1 and layer.failures == 0


def test_a_consumers_own_non_blocking_receive_still_raises():
    layer = OutageTolerantLayer(FlakyLayer(failures=1), sleep=lambda pause: None)
    with pytest.raises(redis.exceptions.ConnectionError):
        layer.receive_many(["__wait__.daphne.response.x?y"], block=False)


def test_the_rest_is_the_wrapped_layers():
    assert OutageTolerantLayer(FlakyLayer(0)).router == "the router"


def test_the_worker_ready_signal_wraps_every_thread_of_a_worker_once():
    class Worker:
        def __init__(self):
            self.channel_layer = FlakyLayer(0)

    worker = Worker()
    worker.workers = [Worker(), Worker()]
    tolerate_redis_outages(worker)
    tolerate_redis_outages(worker)
    for each in [worker, *worker.workers]:
        assert isinstance(each.channel_layer, OutageTolerantLayer)
        assert isinstance(each.channel_layer._layer, FlakyLayer)


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ResponseError("WRONGPASS invalid username-password pair or user is disabled."),
        redis.exceptions.ResponseError("NOAUTH Authentication required."),
        redis.exceptions.ResponseError("invalid password"),
        redis.exceptions.AuthenticationError("Invalid Password"),
    ],
)
def test_refused_credentials_are_waited_out_like_an_unreachable_redis(error):
    class RefusingLayer(FlakyLayer):
        def receive_many(self, channels, block=False):
            raise error

    layer = OutageTolerantLayer(RefusingLayer(0), sleep=lambda pause: None)
    assert layer.receive_many(["websocket.receive"], block=True) == (None, None)
    assert layer.failures == 1


def test_any_other_redis_error_still_ends_the_worker_loop():
    class BuggyLayer(FlakyLayer):
        def receive_many(self, channels, block=False):
            raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        OutageTolerantLayer(BuggyLayer(0), sleep=lambda pause: None).receive_many(["websocket.receive"], block=True)
