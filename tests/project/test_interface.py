"""channels1_kit.interface.InterfaceLayer, daphne's side of the channel layer, over a fake layer."""

import json

import pytest
import redis
from django.test import override_settings
from twisted.internet import defer, task
from twisted.python.failure import Failure

from channels1_kit import drain, interface
from channels1_kit.interface import InterfaceLayer
from channels1_kit.websocket import CLOSE_RECONNECT, OVERSIZED_KEY

SEND_CHANNEL = "daphne.response.AbCdEfGhIj!"


class ChannelFull(Exception):
    pass


class FakeRedis:
    def __init__(self):
        self.run_id = "first"
        self.down = False
        self.values = {}

    def _check(self):
        if self.down:
            raise redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")

    def info(self, section=None):
        self._check()
        return {"run_id": self.run_id, "uptime_in_seconds": 100}

    def set(self, key, value, ex=None):
        self._check()
        self.values[key] = (value, ex)

    def get(self, key):
        self._check()
        return self.values.get(key, (None, None))[0]


class FakeLayer:
    """What daphne and InterfaceLayer use of a channel layer."""

    ChannelFull = ChannelFull
    prefix = "asgi:"
    ring_size = 1
    group_expiry = 604800
    extensions = ["groups", "twisted"]

    def __init__(self):
        self.sent = []
        self.expiries = {}  # index in sent: the expiry it was sent with, if not the layer's
        self.failure = None
        self.redis = FakeRedis()
        self.receiving = []

    def send(self, channel, message):
        if self.failure is not None:
            raise self.failure
        self.sent.append((channel, message))

    def send_with_expiry(self, channel, message, expiry):
        self.send(channel, message)
        self.expiries[len(self.sent) - 1] = expiry

    def connection(self, index):
        return self.redis

    def receive_twisted(self, channels):
        deferred = defer.Deferred()
        self.receiving.append(deferred)
        return deferred


@pytest.fixture
def fake():
    return FakeLayer()


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def layer(fake, clock):
    return InterfaceLayer(fake, clock=clock)


def result_of(deferred):
    """What deferred has fired with so far (None if nothing yet); leaves its result as it was,
    except that a failure is taken (it is the test's to check)."""
    results = []

    def keep(value):
        results.append(value)
        return None if isinstance(value, Failure) else value

    deferred.addBoth(keep)
    return results[0] if results else None


def connect(layer, name: str) -> str:
    reply_channel = SEND_CHANNEL + name
    layer.send("websocket.connect", {"reply_channel": reply_channel, "path": "/chat/stream/", "order": 0})
    return reply_channel


def test_everything_but_send_and_receive_twisted_is_the_wrapped_layers(layer, fake):
    assert layer.ChannelFull is ChannelFull
    assert layer.group_expiry == 604800
    assert "twisted" in layer.extensions


def test_a_redis_error_on_send_is_answered_as_a_full_channel(layer, fake):
    """daphne turns ChannelFull into 503 and close 1013; any other exception into a 500 or worse."""
    fake.failure = redis.exceptions.ConnectionError("Connection refused")
    for channel in ("http.request", "websocket.connect", "websocket.receive"):
        with pytest.raises(ChannelFull):
            layer.send(channel, {"reply_channel": SEND_CHANNEL + "x", "text": "{}"})
    fake.failure = redis.exceptions.TimeoutError("Timeout reading from socket")
    with pytest.raises(ChannelFull):
        layer.send("http.request", {"reply_channel": SEND_CHANNEL + "y"})


def test_the_open_sockets_are_those_connected_and_not_yet_disconnected(layer, fake):
    alice, bob, carol = connect(layer, "alice"), connect(layer, "bob"), connect(layer, "carol")
    layer.send("websocket.disconnect", {"reply_channel": bob, "code": 1000})
    # A socket whose frame could not be queued is closed by daphne (1013), without a disconnect.
    fake.failure = ChannelFull()
    with pytest.raises(ChannelFull):
        layer.send("websocket.receive", {"reply_channel": carol, "text": "{}"})
    assert layer.open_sockets == {alice}


def test_a_handshake_that_finds_no_room_is_answered_here_with_when_to_come_back(layer, fake, clock):
    """websocket.connect full: not a 503 (a page cannot read it, and would retry into the same
    backlog), but an accept, a frame saying when to come back, and close 4013; no open socket,
    and nothing of that socket reaches the layer afterwards."""
    fake.failure = ChannelFull()
    dave = connect(layer, "dave")
    assert layer.open_sockets == set()
    clock.advance(0)
    channel, reply = result_of(layer.receive_twisted([SEND_CHANNEL]))
    assert channel == dave and reply["accept"] is True and reply["close"] == drain.CLOSE_BUSY
    frame = json.loads(reply["text"])
    assert frame["error"] == "server-busy"
    low, high = drain.BUSY_RETRY_AFTER_SECONDS
    assert low <= frame["retry_after"] <= high
    fake.failure = None
    layer.send("websocket.disconnect", {"reply_channel": dave, "code": 4013, "order": 1})
    assert fake.sent == []


def test_the_drain_slices_are_spread_over_the_window_and_cover_every_socket():
    names = [f"s{index}" for index in range(95)]
    plan = drain.slices(names, window=20.0)
    assert plan[0][0] == 0.0 and plan[-1][0] == 20.0
    assert sorted(name for _, chunk in plan for name in chunk) == sorted(names)
    assert max(len(chunk) for _, chunk in plan) <= 3
    assert drain.slices(["one"], window=20.0) == [(0.0, ["one"])]
    assert drain.slices([], window=20.0) == []
    # A window of 0 closes everything at once.
    assert drain.slices(names, window=0.0) == [(0.0, names)]


@override_settings(CHANNELS1_KIT_DRAIN_SECONDS=10)
def test_a_drain_closes_the_sockets_slice_by_slice_each_told_when_to_come_back(layer, fake, clock):
    sockets = [connect(layer, f"page{index:02d}") for index in range(40)]
    done = layer.drain()
    closed_at, pending = {}, None
    for step in range(0, 120):
        while True:
            # As daphne: one receive outstanding at a time, the next asked for once it fired.
            pending = pending or layer.receive_twisted([SEND_CHANNEL])
            received = result_of(pending)
            if received is None:
                break
            pending = None
            channel, reply = received
            assert reply["close"] == drain.CLOSE_RESTARTING
            frame = json.loads(reply["text"])
            assert frame["type"] == "server.restarting"
            low, high = drain.RESTART_RETRY_AFTER_SECONDS
            assert low <= frame["retry_after"] <= high
            closed_at[channel] = step / 10
            layer.send("websocket.disconnect", {"reply_channel": channel, "code": 4012, "order": 1})
        clock.advance(0.1)
    assert sorted(closed_at) == sorted(sockets)
    times = sorted(closed_at.values())
    # Spread over the window, not all at once.
    assert times[0] <= 0.1 and 9.0 <= times[-1] <= 10.2
    assert sum(1 for at in times if at < 5.0) <= 25
    assert result_of(done) is None and done.called
    assert layer.open_sockets == set()
    # A handshake still on its way while draining is told to come back, not connected.
    late = connect(layer, "late")
    clock.advance(0)
    channel, reply = result_of(pending)
    assert channel == late and reply["close"] == drain.CLOSE_RESTARTING
    assert not any(sent[0] == "websocket.connect" and sent[1]["reply_channel"] == late for sent in fake.sent)


@override_settings(CHANNELS1_KIT_MAX_FRAME_BYTES=10)
def test_a_frame_over_the_limit_goes_to_the_worker_as_its_size_only(layer, fake):
    small = {"reply_channel": SEND_CHANNEL + "a", "path": "/chat/stream/", "order": 1, "text": "0123456789"}
    layer.send("websocket.receive", small)
    layer.send("websocket.receive", {**small, "order": 2, "text": "é" * 6})  # 12 bytes in UTF-8
    layer.send("websocket.receive", {**small, "order": 3, "text": None, "bytes": b"\x00" * 11})
    assert fake.sent[0] == ("websocket.receive", small)
    assert fake.sent[1] == (
        "websocket.receive",
        {"reply_channel": small["reply_channel"], "path": "/chat/stream/", "order": 2, OVERSIZED_KEY: 12},
    )
    assert fake.sent[2][1][OVERSIZED_KEY] == 11 and "bytes" not in fake.sent[2][1]


def test_the_heartbeat_writes_the_open_sockets_for_the_sweep(layer, fake, clock):
    connect(layer, "alice")
    connect(layer, "bob")
    layer.receive_twisted([SEND_CHANNEL])  # daphne's first receive starts the heartbeat
    value, expiry = fake.redis.values[f"asgi::sockets:{SEND_CHANNEL}"]
    assert '"sockets": ["alice", "bob"]' in value
    assert expiry == 3 * 10


def test_when_redis_restarts_every_socket_is_closed_so_that_it_reconnects(layer, fake, clock):
    alice, bob = connect(layer, "alice"), connect(layer, "bob")
    first = layer.receive_twisted([SEND_CHANNEL])  # waits on Redis
    assert result_of(first) is None

    fake.redis.down = True
    clock.advance(10)  # unreachable: nothing is closed yet, Redis may come back with its data
    assert result_of(first) is None
    fake.redis.down = False
    fake.redis.run_id = "second"  # it came back as a new server, empty
    fake.redis.values.clear()
    clock.advance(10)

    # The waiting receive is answered with a close at once, the other close comes next.
    closes = [result_of(first), result_of(layer.receive_twisted([SEND_CHANNEL]))]
    assert sorted(closes) == [(alice, {"close": CLOSE_RECONNECT}), (bob, {"close": CLOSE_RECONNECT})]
    assert layer.open_sockets == set()

    # The receive that was waiting on Redis still delivers what it gets, to the next call.
    fake.receiving[0].callback((SEND_CHANNEL + "carol", {"text": "late"}))
    assert result_of(layer.receive_twisted([SEND_CHANNEL])) == (SEND_CHANNEL + "carol", {"text": "late"})
    assert len(fake.receiving) == 1


def test_another_server_that_kept_the_data_a_failover_closes_nothing(layer, fake, clock):
    connect(layer, "alice")
    waiting = layer.receive_twisted([SEND_CHANNEL])
    assert fake.redis.values[f"asgi::daphne-marker:{SEND_CHANNEL}"] == ("1", 604800)
    fake.redis.run_id = "the-promoted-replica"  # a new run_id, but the data (and the marker) replicated
    clock.advance(10)
    assert result_of(waiting) is None
    assert layer.open_sockets == {SEND_CHANNEL + "alice"}
    # And a later restart that does lose the data still closes the sockets.
    fake.redis.run_id = "restarted-empty"
    fake.redis.values.clear()
    clock.advance(10)
    assert result_of(waiting) == (SEND_CHANNEL + "alice", {"close": CLOSE_RECONNECT})


def test_a_redis_that_comes_back_with_the_same_run_id_closes_nothing(layer, fake, clock):
    connect(layer, "alice")
    waiting = layer.receive_twisted([SEND_CHANNEL])
    fake.redis.down = True
    clock.advance(10)
    fake.redis.down = False
    clock.advance(10)
    assert result_of(waiting) is None
    fake.receiving[0].callback((None, None))
    assert result_of(waiting) == (None, None)
    assert layer.open_sockets == {SEND_CHANNEL + "alice"}


def test_a_failed_receive_reaches_daphne_which_logs_it_and_waits(layer, fake):
    waiting = layer.receive_twisted([SEND_CHANNEL])
    fake.receiving[0].errback(RuntimeError("boom"))
    failure = result_of(waiting)
    assert failure.check(RuntimeError)
    failure.trap(RuntimeError)


# The frame budget (channels1_kit/floods.py): what daphne keeps out of Redis for a flooding socket.


def frame(reply_channel: str, order: int) -> dict:
    return {"reply_channel": reply_channel, "path": "/chat/stream/", "order": order, "text": "{}"}


def replies(layer, reply_channel: str) -> list:
    """The messages daphne would take for reply_channel from the layer's own queue."""
    got = []
    while True:
        waiting = layer.receive_twisted([SEND_CHANNEL])
        result = result_of(waiting)
        if result is None:
            layer._waiter = None
            return got
        assert result[0] == reply_channel
        got.append(result[1])


@override_settings(CHANNELS1_KIT_FRAME_BURST=3, CHANNELS1_KIT_FRAME_RATE=1, CHANNELS1_KIT_FLOOD_CLOSE_AFTER=5)
def test_frames_over_budget_never_reach_redis_and_the_rest_keep_an_unbroken_order(layer, fake, clock):
    alice = connect(layer, "alice")
    for order in range(1, 7):  # six at once: three pass, three are refused
        layer.send("websocket.receive", frame(alice, order))
    clock.advance(2)  # two more tokens
    layer.send("websocket.receive", frame(alice, 7))
    layer.send("websocket.receive", frame(alice, 8))
    layer.send("websocket.disconnect", {"reply_channel": alice, "order": 9})
    orders = [(channel, message["order"]) for channel, message in fake.sent]
    # The worker's enforce_ordering waits for every number: frames 7 and 8 arrive as 4 and 5.
    assert orders == [
        ("websocket.connect", 0),
        *[("websocket.receive", order) for order in (1, 2, 3, 4, 5)],
        ("websocket.disconnect", 6),
    ]
    # Told once for the whole flood, with the budget; not closed (3 refused, fewer than 5).
    told = replies(layer, alice)
    assert len(told) == 1 and "close" not in told[0]
    assert json.loads(told[0]["text"])["error"] == "rate-limited"


@override_settings(CHANNELS1_KIT_FRAME_BURST=2, CHANNELS1_KIT_FRAME_RATE=1, CHANNELS1_KIT_FLOOD_CLOSE_AFTER=4)
def test_a_socket_that_keeps_flooding_is_closed_and_others_are_untouched(layer, fake, clock):
    flooder, calm = connect(layer, "flooder"), connect(layer, "calm")
    for order in range(1, 11):
        layer.send("websocket.receive", frame(flooder, order))
    layer.send("websocket.receive", frame(calm, 1))
    layer.send("websocket.receive", frame(calm, 2))
    sent = [
        (message["reply_channel"], message["order"]) for channel, message in fake.sent if channel.endswith("receive")
    ]
    assert sent == [(flooder, 1), (flooder, 2), (calm, 1), (calm, 2)]
    told = replies(layer, flooder)
    # The first refusal tells; the fourth closes (4429: autobahn sends no 1008); then silence.
    assert [sorted(message) for message in told] == [["text"], ["close"]]
    assert told[1]["close"] == 4429


@override_settings(CHANNELS1_KIT_FRAME_RATE=0)
def test_a_rate_of_zero_turns_the_budget_off(layer, fake):
    alice = connect(layer, "alice")
    for order in range(1, 101):
        layer.send("websocket.receive", frame(alice, order))
    assert len(fake.sent) == 101


@override_settings(CHANNELS1_KIT_CONNECT_PENDING_LIMIT=3)
def test_past_the_pending_handshake_limit_a_handshake_is_told_when_to_come_back_not_queued(layer, fake, clock):
    """A restart storm: handshakes queued behind more than the workers answer within daphne's 5 s
    connect timeout are work for pages already refused. Past the limit a handshake is answered
    here (4013, retry_after), never sent; a worker's answer, or daphne's timeout, frees a place."""
    waiting = [connect(layer, f"page{index}") for index in range(3)]
    assert [sent[1]["reply_channel"] for sent in fake.sent] == waiting

    late = connect(layer, "late")
    clock.advance(0)
    channel, reply = result_of(layer.receive_twisted([SEND_CHANNEL]))
    assert channel == late and reply["close"] == drain.CLOSE_BUSY
    assert json.loads(reply["text"])["error"] == "server-busy"
    assert len(fake.sent) == 3

    # A worker accepts the first: the next handshake goes to the workers.
    pending = layer.receive_twisted([SEND_CHANNEL])
    fake.receiving[-1].callback((waiting[0], {"accept": True}))
    assert result_of(pending) == (waiting[0], {"accept": True})
    after_accept = connect(layer, "after-accept")
    assert fake.sent[-1][1]["reply_channel"] == after_accept

    # Full again; once daphne's connect timeout has passed, the unanswered ones no longer count.
    assert result_of(layer.receive_twisted([SEND_CHANNEL])) is None
    connect(layer, "refused-again")
    assert fake.sent[-1][1]["reply_channel"] == after_accept
    clock.advance(6)
    after_timeout = connect(layer, "after-timeout")
    assert fake.sent[-1][1]["reply_channel"] == after_timeout


def test_a_handshake_expires_in_redis_when_daphne_stops_waiting_for_it(layer, fake):
    """No worker may accept a page daphne has already refused: its websocket.connect expires with
    daphne's connect timeout; frames and disconnects keep the layer's expiry."""
    reply_channel = connect(layer, "page")
    layer.send("websocket.receive", {"reply_channel": reply_channel, "text": "{}", "order": 1})
    layer.send("websocket.disconnect", {"reply_channel": reply_channel, "order": 2})

    assert [channel for channel, _ in fake.sent] == ["websocket.connect", "websocket.receive", "websocket.disconnect"]
    assert fake.expiries == {0: interface.CONNECT_TIMEOUT_SECONDS}


def test_no_worker_hears_of_the_disconnect_of_a_handshake_daphne_refused_unanswered(layer, fake, clock):
    """Its websocket.connect expired in Redis unread: no worker ran it, so none runs its disconnect.
    A socket a worker answered, or one that closed while its connect could still be taken, does."""
    refused = connect(layer, "refused")
    answered = connect(layer, "answered")
    pending = layer.receive_twisted([SEND_CHANNEL])
    fake.receiving[-1].callback((answered, {"accept": True}))
    assert result_of(pending) == (answered, {"accept": True})
    clock.advance(interface.CONNECT_TIMEOUT_SECONDS)
    closed_early = connect(layer, "closed-early")
    clock.advance(interface.CONNECT_TIMEOUT_SECONDS - 1)

    for reply_channel in (refused, answered, closed_early):
        layer.send("websocket.disconnect", {"reply_channel": reply_channel, "order": 1})

    disconnects = [message["reply_channel"] for channel, message in fake.sent if channel == "websocket.disconnect"]
    assert disconnects == [answered, closed_early]
    assert layer.open_sockets == set()


def test_the_busy_window_stretches_with_the_overload_and_shrinks_back(clock):
    """Pages told busy come back spread over a window the workers can take them in: the upper end
    grows with handshakes wanting in per handshake answered, to a bound, and returns as the load passes."""
    load = drain.HandshakeLoad(clock.seconds)
    assert load.busy_bounds() == drain.BUSY_RETRY_AFTER_SECONDS
    for _ in range(30):
        load.wanted()
    for _ in range(10):
        load.answered()
    low, high = drain.BUSY_RETRY_AFTER_SECONDS
    assert load.busy_bounds() == (low, high * 3)
    for _ in range(1000):
        load.wanted()
    assert load.busy_bounds() == (low, drain.BUSY_RETRY_AFTER_MAX_SECONDS)
    clock.advance(drain.LOAD_WINDOW_SECONDS + 1)
    assert load.busy_bounds() == drain.BUSY_RETRY_AFTER_SECONDS


@override_settings(CHANNELS1_KIT_CONNECT_PENDING_LIMIT=3)
def test_a_daphne_far_behind_tells_busy_pages_to_stay_away_longer(layer, fake, clock):
    """The pending limit (3 in these settings) full and no worker answering: each busy answer is more
    demand, and the window stretches until pages are told up to a minute."""
    for index in range(3):
        connect(layer, f"page{index}")
    told = []
    for index in range(60):
        connect(layer, f"late{index}")
        clock.advance(0)
        _, reply = result_of(layer.receive_twisted([SEND_CHANNEL]))
        told.append(json.loads(reply["text"])["retry_after"])
    assert all(3 <= seconds <= drain.BUSY_RETRY_AFTER_MAX_SECONDS for seconds in told)
    assert max(told[-20:]) > drain.BUSY_RETRY_AFTER_SECONDS[1]
