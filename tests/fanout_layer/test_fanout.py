"""Group fan-out: nothing dropped silently, one round trip per shard, batched receives."""

import logging
import math
import threading

import pytest

from fanout_layer.layer import HANDSHAKE_LANE
from tests.fanout_layer.support import (
    command_calls,
    drain,
    lane_reader_key,
    raw_client,
    round_trips,
    stock,
)

DAPHNE = "daphne.response.AbCdEfGh!"


def join_daphne(layer, group: str, sockets: int, daphne: str = DAPHNE) -> set[str]:
    """Puts that many sockets of one daphne in the group, as its consumers would."""
    channels = {f"{daphne}{number}" for number in range(sockets)}
    for channel in channels:
        layer.group_add(group, channel)
    return channels


def test_every_socket_sharing_a_reply_channel_gets_the_group_message(make_layer, redis_one):
    layer = make_layer()
    sockets = join_daphne(layer, "liveblog-1", 500)

    layer.send_group("liveblog-1", {"text": "new post"})

    received = drain(layer, [DAPHNE])
    assert sorted(channel for channel, _ in received) == sorted(sockets)
    assert all(message == {"text": "new post"} for _, message in received)
    assert layer.channel_full_count == 0


def test_stock_asgi_redis_drops_the_same_fan_out_silently(make_layer, redis_one):
    """What the layer fixes: asgi_redis's default capacity covers the whole daphne."""
    ours = make_layer()
    join_daphne(ours, "liveblog-1", 500)
    ours.send_group("liveblog-1", {"text": "new post"})

    assert stock("fan-out", redis_one) == {"received": 100}
    assert len(drain(ours, [DAPHNE])) == 500


def test_each_socket_gets_group_messages_in_order(make_layer):
    layer = make_layer()
    sockets = join_daphne(layer, "room", 50)

    for number in range(3):
        layer.send_group("room", {"number": number})

    by_channel: dict[str, list[int]] = {}
    for channel, message in drain(layer, [DAPHNE]):
        by_channel.setdefault(channel, []).append(message["number"])
    assert by_channel == {channel: [0, 1, 2] for channel in sockets}


def test_group_send_reaches_every_kind_of_member(make_layer):
    layer = make_layer()
    first = join_daphne(layer, "room", 3, daphne="daphne.response.first!")
    second = join_daphne(layer, "room", 2, daphne="daphne.response.second!")
    single_reader = layer.new_channel("reply?")
    layer.group_add("room", single_reader)
    layer.group_add("room", "ordinary.channel")

    layer.send_group("room", {"value": 1})

    assert {channel for channel, _ in drain(layer, ["daphne.response.first!"])} == first
    assert {channel for channel, _ in drain(layer, ["daphne.response.second!"])} == second
    assert drain(layer, [single_reader]) == [(single_reader, {"value": 1})]
    assert drain(layer, ["ordinary.channel"]) == [("ordinary.channel", {"value": 1})]


def test_process_local_channels_have_their_own_capacity(make_layer):
    layer = make_layer(capacity=3, channel_capacity={"http.request": 7})

    assert layer.get_capacity("http.response") == 3
    assert layer.get_capacity(DAPHNE) == 10_000
    assert layer.get_capacity("http.request") == 7
    assert make_layer(process_local_capacity=50).get_capacity(DAPHNE) == 50


def test_channel_capacity_patterns_override_the_process_local_capacity(make_layer):
    layer = make_layer(channel_capacity={"daphne.response.*": 3})
    join_daphne(layer, "room", 5)

    layer.send_group("room", {"value": 1})

    assert len(drain(layer, [DAPHNE])) == 3
    assert layer.channel_full_count == 2


def test_members_left_out_of_a_group_send_are_counted_and_logged(make_layer, caplog):
    layer = make_layer(process_local_capacity=10)
    join_daphne(layer, "room", 15)

    with caplog.at_level(logging.WARNING, logger="fanout_layer"):
        layer.send_group("room", {"value": 1})

    assert len(drain(layer, [DAPHNE])) == 10
    assert layer.channel_full_count == 5
    assert layer.channel_full_counts() == {DAPHNE: 5}
    [record] = [record for record in caplog.records if record.name == "fanout_layer"]
    assert record.levelno == logging.WARNING
    assert "Group room: 5 member channel(s) full" in record.getMessage()
    # asgi_redis's statistics extension sees the same numbers, from Redis.
    assert layer.global_statistics() == {"messages_count": 10, "channel_full_count": 5}
    assert layer.channel_statistics(DAPHNE)["channel_full_count"] == 5


def test_a_full_channel_refuses_a_send_and_it_is_counted_and_logged(make_layer, caplog):
    layer = make_layer(capacity=2)
    layer.send("http.request", {"n": 1})
    layer.send("http.request", {"n": 2})

    with caplog.at_level(logging.WARNING, logger="fanout_layer"), pytest.raises(layer.ChannelFull):
        layer.send("http.request", {"n": 3})

    assert layer.channel_full_count == 1
    assert "Channel http.request is full (capacity 2)" in caplog.text
    assert layer.global_statistics()["channel_full_count"] == 1
    assert [message["n"] for _, message in drain(layer, ["http.request"])] == [1, 2]


def test_group_send_is_one_round_trip_and_one_push_per_list_on_one_redis(own_redis, make_layer):
    layer = make_layer([own_redis])
    join_daphne(layer, "room", 500)
    for number in range(10):
        layer.group_add("room", f"ordinary.{number}")
    # Loads the scripts into Redis, as the first send of any process does.
    layer.send_group("warm-up", {})
    client = raw_client(own_redis)
    client.config_resetstat()

    with round_trips() as trips:
        layer.send_group("room", {"text": "x" * 1000})

    assert trips == {own_redis.port: 1}
    calls = command_calls(client)
    # The body is written once, and each list (the daphne's, and the 10 ordinary
    # channels') gets one push however many sockets it serves.
    assert calls["evalsha"] == 1
    assert calls["hset"] == 1
    assert calls["rpush"] == 11
    assert "set" not in calls


def test_stock_asgi_redis_group_send_costs_round_trips_per_member(own_redis):
    """What the layer fixes: a round trip (two, with statistics) for every member."""
    assert stock("group-send-round-trips", own_redis)["round_trips"] >= 100


def test_group_send_is_one_round_trip_per_shard_plus_the_membership(make_layer, redis_two):
    layer = make_layer(redis_two)
    daphnes = [f"daphne.response.{name}!" for name in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")]
    shard_of_daphne = {daphne: layer.consistent_hash(daphne) for daphne in daphnes}
    assert set(shard_of_daphne.values()) == {0, 1}, "the daphnes should live on both shards"
    sockets = {daphne: join_daphne(layer, "room", 20, daphne=daphne) for daphne in daphnes}
    # Loads the scripts into both Redis servers, as the first sends of any process do.
    layer.send_group("room", {"value": 0})
    for daphne in daphnes:
        drain(layer, [daphne])

    with round_trips() as trips:
        layer.send_group("room", {"value": 1})

    group_port = redis_two[layer.consistent_hash("room")].port
    assert trips == {server.port: 1 + (server.port == group_port) for server in redis_two}
    for daphne in daphnes:
        assert {channel for channel, _ in drain(layer, [daphne])} == sockets[daphne]


def test_receive_takes_a_batch_per_round_trip_and_hands_it_out_one_by_one(make_layer):
    layer = make_layer(receive_batch_size=100)
    join_daphne(layer, "room", 250)
    layer.send_group("room", {"value": 1})
    layer.receive(["nothing.here"])

    with round_trips() as trips:
        received = drain(layer, [DAPHNE])

    assert len(received) == 250
    # Three batches (100, 100, 50) and the take that finds the list empty.
    assert sum(trips.values()) == math.ceil(250 / 100) + 1


def test_a_batch_handed_out_leaves_nothing_behind_for_its_channel(make_layer):
    # A worker reads each socket's enforce_ordering wait channel ("__wait__...?<socket>") once or
    # twice in the socket's life: what it keeps per channel name must go with the last message.
    layer = make_layer(receive_batch_size=100)
    waits = [f"__wait__.daphne.response.AbCd?socket{n}" for n in range(20)]
    for wait in waits:
        for order in (2, 3):
            layer.send(wait, {"order": order})
    for wait in waits:
        assert [layer.receive([wait])[1]["order"] for _ in range(2)] == [2, 3]
        assert layer.receive([wait]) == (None, None)
    assert len(layer._waiting) == 0


@pytest.mark.parametrize(
    "message",
    [{"text": "hello", "count": 1}, {"text": "hello", "headers": [["a", "b"]], "extra": {"k": "v"}}],
    ids=["flat", "nested"],
)
def test_each_recipient_of_a_batched_group_message_gets_a_message_of_its_own(make_layer, message):
    """The batch is unpacked once per body; a consumer changing its message changes no other's."""
    layer = make_layer(receive_batch_size=100)
    join_daphne(layer, "room", 3)
    layer.send_group("room", message)

    received = [received_message for _, received_message in drain(layer, [DAPHNE])]
    assert received == [message] * 3
    received[0]["text"] = "changed"
    received[0].setdefault("headers", []).append("more")
    if "extra" in message:
        received[0]["extra"]["k"] = "changed"
    assert received[1:] == [message] * 2
    assert len({id(each) for each in received}) == 3


def test_a_message_other_workers_could_take_is_never_held_back(make_layer, redis_one):
    layer = make_layer()
    other_worker = make_layer(prefix=layer.prefix, stats_prefix=layer.stats_prefix)
    for number in range(5):
        layer.send("http.request", {"n": number})

    assert layer.receive(["http.request"]) == ("http.request", {"n": 0})

    assert raw_client(redis_one).llen(layer.prefix + "http.request") == 4
    assert [message["n"] for _, message in drain(other_worker, ["http.request"])] == [1, 2, 3, 4]


def test_a_group_message_is_stored_once_and_deleted_by_its_last_reader(make_layer, redis_one):
    layer = make_layer()
    join_daphne(layer, "room", 300)
    layer.send_group("room", {"value": 1})
    client = raw_client(redis_one)

    [body_key] = [key for key in client.keys(layer.prefix + "*") if client.type(key) == b"hash"]
    assert client.hget(body_key, "readers") == b"300"

    assert len(drain(layer, [DAPHNE])) == 300
    assert not client.exists(body_key)
    # Besides the group, only the daphne's mark that it reads its handshake lane (it expires).
    assert sorted(client.keys(layer.prefix + "*")) == [layer._group_key("room"), lane_reader_key(layer, DAPHNE)]


@pytest.mark.parametrize("answer", [{"accept": True}, {"accept": False}])
def test_a_handshake_answer_overtakes_the_daphnes_fan_out_backlog(make_layer, answer):
    """Thousands of a fan-out's entries wait on a busy daphne's reply channel: a worker's answer to a
    new socket's handshake is handed out before them (daphne refuses a handshake after 5 s), while
    anything else for a socket keeps its place behind what was sent before it."""
    layer = make_layer(receive_batch_size=10)
    assert layer.receive([DAPHNE]) == (None, None)  # the daphne reads (and so marks) its lane
    sockets = join_daphne(layer, "liveblog-1", 300)
    layer.send_group("liveblog-1", {"text": "post"})
    layer.send(DAPHNE + "old", {"text": "a reply"})
    layer.send(DAPHNE + "new", answer)

    received = drain(layer, [DAPHNE])

    assert received[0] == (DAPHNE + "new", answer)
    assert received[-1] == (DAPHNE + "old", {"text": "a reply"})
    assert sorted(channel for channel, _ in received[1:-1]) == sorted(sockets)


def test_a_daphne_that_does_not_read_the_lane_gets_its_answers_in_line(make_layer, redis_one):
    """A daphne of an older release (it never takes from the lane) during a rolling deploy: the
    answer is pushed onto its reply channel as before, behind the backlog, never lost on a lane."""
    layer = make_layer()
    sockets = join_daphne(layer, "liveblog-1", 30)
    layer.send_group("liveblog-1", {"text": "post"})
    layer.send(DAPHNE + "new", {"accept": True})

    received = drain(layer, [DAPHNE])

    assert received[-1] == (DAPHNE + "new", {"accept": True})
    assert sorted(channel for channel, _ in received[:-1]) == sorted(sockets)
    client = raw_client(redis_one)
    assert 0 < client.ttl(layer.prefix + DAPHNE + HANDSHAKE_LANE + ":reader") <= 60  # read from now on


def test_a_waiting_daphne_wakes_for_a_handshake_answer(make_layer):
    """The answer comes while the receive waits in BLPOP (else it would return nothing after the wait)."""
    layer = make_layer()
    assert layer.receive([DAPHNE]) == (None, None)
    sender = threading.Timer(0.5, lambda: layer.send(DAPHNE + "new", {"accept": True}))
    sender.start()
    try:
        assert layer.receive([DAPHNE], block=True) == (DAPHNE + "new", {"accept": True})
    finally:
        sender.join()
