"""channels1_kit.gone: a disconnect deletes its socket's channel session, and replies to the
sockets of a dead daphne are dropped and counted. Against a real Redis, with channels' own
decorators and router."""

import logging
import time

import pytest
from channels.asgi import ChannelLayerWrapper
from channels.message import Message
from channels.routing import route
from channels.sessions import channel_session, enforce_ordering, session_for_reply_channel
from django.test import override_settings

from channels1_kit import channel_sessions, gone, sockets
from fanout_layer import FanoutRedisChannelLayer
from tools.processes import RedisServer

LIVE = "daphne.response.LiveLiveLi!"
DEAD = "daphne.response.DeadDeadDe!"
REPLY = LIVE + "socket"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("gone-redis"), name="gone-redis") as server:
        yield server


@pytest.fixture
def layer(redis_server, monkeypatch):
    # A full reply channel after two messages.
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="gone-test:", process_local_capacity=2)
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    yield layer
    layer.flush()


def worker_layer(layer, *consumers) -> gone.GoneSocketsLayer:
    """What a runworker's consumers see as message.channel_layer, with these routes."""
    return gone.GoneSocketsLayer(ChannelLayerWrapper(layer, "default", list(consumers)))


def session_exists(reply_channel: str) -> bool:
    session = session_for_reply_channel(reply_channel)
    return session.exists(session.session_key)


def handle(worker, channel: str, content: dict) -> None:
    """What channels' Worker.run does with one message: match it on the layer's router, run it."""
    message = Message(content=content, channel_name=channel, channel_layer=worker)
    consumer, kwargs = worker.router.match(message)
    consumer(message, **kwargs)


# -- a disconnect leaves nothing behind -----------------------------------------------------------


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_a_handled_disconnect_deletes_the_sockets_channel_session_and_wait_statistics(layer):
    @channel_session
    def connect(message):
        message.channel_session["room"] = "general"

    heard = []

    @channel_session
    def disconnect(message):
        heard.append(message.channel_session["room"])

    worker = worker_layer(layer, route("websocket.connect", connect), route("websocket.disconnect", disconnect))
    handle(worker, "websocket.connect", {"reply_channel": REPLY, "order": 0})
    assert session_exists(REPLY)
    wait_count = f"{layer.stats_prefix}__wait__.{REPLY.replace('!', '?')}:messages_count"
    layer.connection(0).set(wait_count, 2)

    handle(worker, "websocket.disconnect", {"reply_channel": REPLY, "order": 1})

    # The consumer still had the session; after it, nothing of the socket is left.
    assert heard == ["general"]
    assert not session_exists(REPLY)
    assert not layer.connection(0).exists(wait_count)


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_a_disconnect_parked_behind_a_missing_frame_keeps_the_session_until_its_turn(layer):
    @enforce_ordering
    def connect(message):
        pass

    @enforce_ordering
    def receive(message):
        pass

    @enforce_ordering
    def disconnect(message):
        pass

    worker = worker_layer(
        layer,
        route("websocket.connect", connect),
        route("websocket.receive", receive),
        route("websocket.disconnect", disconnect),
    )
    handle(worker, "websocket.connect", {"reply_channel": REPLY, "order": 0})
    # Frame 1 is still on its way (in another worker): the disconnect (2) waits for it.
    handle(worker, "websocket.disconnect", {"reply_channel": REPLY, "order": 2})
    assert session_exists(REPLY)

    handle(worker, "websocket.receive", {"reply_channel": REPLY, "order": 1, "text": "hi"})
    # enforce_ordering put the disconnect back on its channel: its turn now.
    channel, content = layer.receive(["websocket.disconnect"])
    handle(worker, channel, content)
    assert not session_exists(REPLY)


def test_other_channels_consumers_are_left_as_they_are(layer):
    def connect(message):
        pass

    worker = worker_layer(layer, route("websocket.connect", connect))
    message = Message(content={"reply_channel": REPLY}, channel_name="websocket.connect", channel_layer=worker)
    assert worker.router.match(message)[0] is connect


# -- no work for a socket that is gone ------------------------------------------------------------


def fill(layer, daphne: str) -> None:
    for n in range(2):
        layer.send(daphne + f"filler{n}", {"n": n})


@override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0)
def test_a_reply_to_a_dead_daphnes_full_channel_is_dropped_and_counted(layer, caplog):
    fill(layer, DEAD)
    worker = worker_layer(layer)

    with caplog.at_level(logging.INFO, logger="channels1_kit.gone"):
        worker.send(DEAD + "socket", {"text": "too late"})
        worker.send(DEAD + "other", {"text": "too late"})

    total, per_daphne = gone.dropped_statistics(layer, [DEAD, LIVE])
    assert (total, per_daphne) == (2, {DEAD: 2, LIVE: 0})
    assert "is gone: replies to its sockets are dropped" in caplog.text
    assert "Traceback" not in caplog.text


def test_once_a_daphne_is_known_dead_its_replies_no_longer_reach_redis(layer):
    fill(layer, DEAD)
    with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
        # Dead after 0 s of silence; judged again at every reply.
        worker = worker_layer(layer)
        worker.send(DEAD + "socket", {"text": "first"})
    refused = layer.channel_statistics(DEAD)["channel_full_count"]
    with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=60):
        for n in range(5):
            worker.send(DEAD + "socket", {"text": f"later {n}"})
    # Counted, without a send refused by Redis.
    assert layer.channel_statistics(DEAD)["channel_full_count"] == refused
    assert gone.dropped_statistics(layer, [DEAD])[0] == 6


@override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0)
def test_a_reply_to_a_live_daphnes_full_channel_still_raises(layer):
    fill(layer, LIVE)
    sockets.write_snapshot(layer, LIVE, [REPLY], now=time.time())
    worker = worker_layer(layer)
    with pytest.raises(layer.ChannelFull):
        worker.send(REPLY, {"text": "behind"})
    assert gone.dropped_statistics(layer, [LIVE])[0] == 0


def test_no_daphne_is_taken_for_dead_while_redis_may_just_have_lost_its_snapshot(layer):
    fill(layer, DEAD)
    # This Redis has been up for less than three heartbeats of a day.
    with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=86400):
        with pytest.raises(layer.ChannelFull):
            worker_layer(layer).send(DEAD + "socket", {"text": "x"})


def test_sends_to_other_channels_are_untouched(layer):
    layer.capacity = 1
    worker = worker_layer(layer)
    worker.send("chat.work", {"n": 1})
    with pytest.raises(layer.ChannelFull):
        worker.send("chat.work", {"n": 2})
