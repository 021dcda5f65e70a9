"""channels1_kit.streams: daphne accepts and catches up a stream's reconnecting page itself, against a real Redis."""

import json

import pytest
from django.test import override_settings
from twisted.internet import task

from channels1_kit import streams
from channels1_kit.interface import InterfaceLayer
from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import unique_prefixes
from tools.processes import RedisServer

SEND_CHANNEL = "daphne.response.AbCdEfGhIj!"
PATH = r"^/blog/(?P<slug>[-\w]+)/stream/?$"
GROUP = "blog.id.7"


def handshake(name: str, *, since="5", path="/blog/news/stream/", origin=b"http://127.0.0.1") -> dict:
    headers = [(b"origin", origin)] if origin is not None else []
    return {
        "reply_channel": SEND_CHANNEL + name,
        "path": path,
        "query_string": b"" if since is None else f"since={since}".encode(),
        "headers": headers,
        "client": ["203.0.113.5", 40000],
        "order": 0,
    }


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("streams-redis"), name="streams-redis") as server:
        yield server


@pytest.fixture(scope="module")
def second_redis(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("streams-second"), name="streams-second") as server:
        yield server


@pytest.fixture
def layer(redis_server, monkeypatch):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], **unique_prefixes())
    monkeypatch.setattr(streams, "channel_layer", lambda: layer)
    streams.register("blog", path=PATH, key="slug", synced=lambda seq: {"type": "synced", "seq": seq})
    yield layer
    streams.unregister("blog")
    layer.flush()


def members(layer) -> list:
    return layer.group_channels(GROUP)


def test_a_page_at_the_head_is_put_in_the_group_and_one_behind_or_ahead_is_not(layer):
    streams.publish("blog", key="news", group=GROUP, seq=5)

    assert streams.join_if_caught_up(layer, handshake("a")) == streams.Joined(group=GROUP, texts=[])
    assert members(layer) == [SEND_CHANNEL + "a"]
    # Without a log (the head a consumer read), one behind is the workers'; so is one ahead.
    for since in ("4", "6", "", "5x", "-5", "1" * 16, None):
        assert streams.join_if_caught_up(layer, handshake(f"b{since}", since=since)) is None
    assert members(layer) == [SEND_CHANNEL + "a"]


def test_only_a_registered_path_with_an_allowed_origin_and_a_published_head_is_answered(layer):
    streams.publish("blog", key="news", group=GROUP, seq=5)

    assert streams.join_if_caught_up(layer, handshake("a", path="/chat/stream/")) is None
    assert streams.join_if_caught_up(layer, handshake("b", path="/blog/other/stream/")) is None
    # What channels' allowed_hosts_only would refuse goes to the consumer, which refuses it.
    assert streams.join_if_caught_up(layer, handshake("c", origin=b"http://evil.example")) is None
    assert streams.join_if_caught_up(layer, handshake("d", origin=None)) is None
    with override_settings(CHANNELS1_KIT_DIRECT_STREAMS=False):
        assert streams.join_if_caught_up(layer, handshake("e")) is None
    assert members(layer) == []


def change(seq: int) -> dict:
    return {"type": "post", "seq": seq}


def test_a_page_the_log_covers_is_sent_what_it_missed_then_synced(layer):
    streams.publish("blog", key="news", group=GROUP, seq=3)
    for seq in (4, 5, 6):
        streams.publish("blog", key="news", group=GROUP, seq=seq, frame=change(seq))

    joined = streams.join_if_caught_up(layer, handshake("a", since="4"))

    assert joined.group == GROUP
    assert [json.loads(text) for text in joined.texts] == [change(5), change(6), {"type": "synced", "seq": 6}]
    assert members(layer) == [SEND_CHANNEL + "a"]
    # Before the log's first change: the workers read the database.
    assert streams.join_if_caught_up(layer, handshake("b", since="2")) is None


def test_a_log_with_a_hole_sends_the_page_to_the_workers(layer):
    streams.publish("blog", key="news", group=GROUP, seq=1, frame=change(1))
    # 2 committed and not published yet (or its publish failed); 3 published first.
    streams.publish("blog", key="news", group=GROUP, seq=3, frame=change(3))

    assert streams.join_if_caught_up(layer, handshake("a", since="1")) is None
    texts = streams.join_if_caught_up(layer, handshake("b", since="2")).texts
    assert [json.loads(text) for text in texts] == [change(3), {"type": "synced", "seq": 3}]
    streams.publish("blog", key="news", group=GROUP, seq=2, frame=change(2))
    assert len(streams.join_if_caught_up(layer, handshake("c", since="1")).texts) == 3
    assert members(layer) == [SEND_CHANNEL + "b", SEND_CHANNEL + "c"]


def test_the_log_keeps_the_last_changes_only(layer, monkeypatch):
    monkeypatch.setattr(streams, "LOG_LENGTH", 3)
    for seq in range(1, 7):
        streams.publish("blog", key="news", group=GROUP, seq=seq, frame=change(seq))

    assert streams.join_if_caught_up(layer, handshake("a", since="2")) is None
    assert len(streams.join_if_caught_up(layer, handshake("b", since="3")).texts) == 4


def test_a_head_only_moves_forward_for_its_group(layer):
    streams.publish("blog", key="news", group=GROUP, seq=5)
    # A consumer's publish of what it read before a later change's publish lands after it.
    streams.publish("blog", key="news", group=GROUP, seq=3)

    assert streams.join_if_caught_up(layer, handshake("a", since="3")) is None
    assert streams.join_if_caught_up(layer, handshake("b", since="5")).group == GROUP
    # Another liveblog given the slug is another group: its head replaces the old one.
    streams.publish("blog", key="news", group="blog.id.8", seq=1)
    assert streams.join_if_caught_up(layer, handshake("c", since="1")).group == "blog.id.8"


def test_a_forgotten_stream_is_not_brought_back_by_a_late_publish_of_its_group(layer):
    streams.publish("blog", key="news", group=GROUP, seq=5)
    streams.forget("blog", key="news", group=GROUP)
    streams.publish("blog", key="news", group=GROUP, seq=5)

    assert streams.join_if_caught_up(layer, handshake("a")) is None
    # A new liveblog under the slug is.
    streams.publish("blog", key="news", group="blog.id.9", seq=0)
    assert streams.join_if_caught_up(layer, handshake("b", since="0")).group == "blog.id.9"


def test_with_shards_every_handshake_goes_to_the_workers(redis_server, second_redis, monkeypatch):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url, second_redis.url], **unique_prefixes())
    monkeypatch.setattr(streams, "channel_layer", lambda: layer)
    streams.register("blog", path=PATH, key="slug")
    try:
        streams.publish("blog", key="news", group=GROUP, seq=5)
        assert streams.join_if_caught_up(layer, handshake("a")) is None
    finally:
        streams.unregister("blog")
        layer.flush()


def test_daphne_accepts_a_page_it_can_catch_up_and_no_worker_hears_of_it(layer):
    clock = task.Clock()
    interface = InterfaceLayer(layer, clock=clock)
    streams.publish("blog", key="news", group=GROUP, seq=5)

    streams.publish("blog", key="news", group=GROUP, seq=6, frame=change(6))

    interface.send("websocket.connect", handshake("a"))
    interface.send("websocket.connect", handshake("b", since="2"))
    clock.advance(0)

    # The first is accepted and caught up here, the second (behind the log) went to the workers.
    assert list(interface._ready) == [
        (SEND_CHANNEL + "a", {"accept": True}),
        (SEND_CHANNEL + "a", {"text": '{"type":"post","seq":6}'}),
        (SEND_CHANNEL + "a", {"text": '{"type":"synced","seq":6}'}),
    ]
    taken = layer.receive_many(["websocket.connect"])
    assert taken[0] == "websocket.connect" and taken[1]["reply_channel"] == SEND_CHANNEL + "b"
    assert layer.receive_many(["websocket.connect"]) == (None, None)
    assert interface.open_sockets == {SEND_CHANNEL + "a", SEND_CHANNEL + "b"}
    # A change broadcast now reaches it.
    layer.send_group(GROUP, {"text": "post 6"})
    assert layer.receive_many([SEND_CHANNEL]) == (SEND_CHANNEL + "a", {"text": "post 6"})

    interface.send("websocket.disconnect", {"reply_channel": SEND_CHANNEL + "a", "code": 1001, "order": 1})

    assert SEND_CHANNEL + "a" not in members(layer)
    assert layer.receive_many(["websocket.disconnect"]) == (None, None)
    assert interface.open_sockets == {SEND_CHANNEL + "b"}
