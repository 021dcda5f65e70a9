"""What the layer keeps in Redis: expiry, prefixes, encryption, shards, and the site's CONFIG."""

import logging
import time

import pytest
from django.conf import settings

from fanout_layer import FanoutRedisChannelLayer
from fanout_layer.layer import _Wait
from tests.fanout_layer.support import drain, lane_reader_key, raw_client, unique_prefixes
from tools.waits import wait_until

DAPHNE = "daphne.response.AbCdEfGh!"


def test_unread_messages_expire_after_expiry(make_layer, redis_one):
    layer = make_layer(expiry=1)
    layer.group_add("room", DAPHNE + "socket")
    layer.send("http.request", {"value": 1})
    layer.send_group("room", {"value": 2})
    client = raw_client(redis_one)
    body_keys = [key for key in client.keys(layer.prefix + "*") if client.type(key) == b"hash"]
    assert len(body_keys) == 2
    assert all(0 < client.pttl(key) <= 1000 for key in body_keys)
    # A list outlives its last body by a second, so it never points at nothing for long.
    assert 1000 < client.pttl(layer.prefix + DAPHNE) <= 2000

    time.sleep(2.1)

    assert layer.receive(["http.request", DAPHNE]) == (None, None)
    # Besides the group, only the daphne's mark that it reads its handshake lane (it expires).
    assert sorted(client.keys(layer.prefix + "*")) == [layer._group_key("room"), lane_reader_key(layer, DAPHNE)]


def test_a_group_member_is_kept_with_its_time_and_the_group_key_for_group_expiry(make_layer, redis_one):
    layer = make_layer(group_expiry=300)
    before = time.time()
    layer.group_add("room", DAPHNE + "socket")

    client = raw_client(redis_one)
    key = layer._group_key("room")
    assert before <= client.zscore(key, DAPHNE + "socket") <= time.time()
    assert 298 <= client.ttl(key) <= 300
    layer.group_discard("room", DAPHNE + "socket")
    assert client.zcard(key) == 0


def test_a_message_read_in_time_is_not_lost_to_expiry_of_another(make_layer):
    layer = make_layer(expiry=2)
    layer.send("http.request", {"value": "old"})
    time.sleep(2.5)
    layer.send("http.request", {"value": "new"})

    assert drain(layer, ["http.request"]) == [("http.request", {"value": "new"})]


def test_a_message_sent_with_a_shorter_expiry_goes_alone(make_layer, redis_one):
    """daphne's handshakes expire with its connect timeout; what else the list holds stays."""
    layer = make_layer(expiry=60)
    layer.send("websocket.connect", {"value": "kept"})
    layer.send_with_expiry("websocket.connect", {"value": "refused by now"}, 1)
    client = raw_client(redis_one)
    short = [key for key in client.keys(layer.prefix + "*") if client.type(key) == b"hash" and client.ttl(key) <= 1]
    assert len(short) == 1
    # The list keeps the longer expiry of the entry before.
    assert client.ttl(layer.prefix + "websocket.connect") > 50

    wait_until(lambda: not client.exists(short[0]), timeout=5, message="the short-lived body to expire")

    assert drain(layer, ["websocket.connect"]) == [("websocket.connect", {"value": "kept"})]


def test_an_expiry_beyond_the_layers_is_refused(make_layer):
    layer = make_layer(expiry=5)
    for expiry in (0, 6):
        with pytest.raises(ValueError, match="expiry must be from 1 to the layer's expiry"):
            layer.send_with_expiry("websocket.connect", {}, expiry)


def test_layers_with_different_prefixes_do_not_see_each_other(make_layer):
    first, second = make_layer(), make_layer()
    first.send("http.request", {"from": "first"})
    first.group_add("room", DAPHNE + "a")
    second.group_add("room", DAPHNE + "b")

    first.send_group("room", {"from": "first"})

    assert second.receive(["http.request", DAPHNE]) == (None, None)
    assert second.group_channels("room") == [DAPHNE + "b"]
    second.flush()
    assert drain(first, ["http.request"]) == [("http.request", {"from": "first"})]
    assert drain(first, [DAPHNE]) == [(DAPHNE + "a", {"from": "first"})]


def test_encrypted_bodies_are_stored_once_and_unreadable_in_redis(make_layer, redis_one):
    layer = make_layer(symmetric_encryption_keys=["the-key"])
    for number in range(3):
        layer.group_add("room", f"{DAPHNE}{number}")

    layer.send_group("room", {"secret": "tell no one"})

    client = raw_client(redis_one)
    [body_key] = [key for key in client.keys(layer.prefix + "*") if client.type(key) == b"hash"]
    assert b"tell no one" not in client.hget(body_key, "body")
    assert [message for _, message in drain(layer, [DAPHNE])] == [{"secret": "tell no one"}] * 3


def test_a_layer_reads_messages_encrypted_with_an_older_key(make_layer):
    old = make_layer(symmetric_encryption_keys=["old-key"])
    new = make_layer(prefix=old.prefix, stats_prefix=old.stats_prefix, symmetric_encryption_keys=["new-key", "old-key"])
    old.send("http.request", {"value": 1})

    assert new.receive(["http.request"]) == ("http.request", {"value": 1})


def test_a_message_no_key_decrypts_is_dropped_with_an_error_not_the_batch(make_layer, caplog):
    writer = make_layer(symmetric_encryption_keys=["their-key"])
    reader = make_layer(prefix=writer.prefix, stats_prefix=writer.stats_prefix, symmetric_encryption_keys=["our-key"])
    writer.send(DAPHNE + "a", {"value": "unreadable"})
    reader.send(DAPHNE + "b", {"value": "readable"})

    with caplog.at_level(logging.ERROR, logger="fanout_layer"):
        received = drain(reader, [DAPHNE])

    assert received == [(DAPHNE + "b", {"value": "readable"})]
    assert "none of the symmetric_encryption_keys decrypts" in caplog.text


def test_shards_hold_what_consistent_hashing_puts_on_them(make_layer, redis_two):
    layer = make_layer(redis_two)
    clients = [raw_client(server) for server in redis_two]
    daphnes = [f"daphne.response.{name}!" for name in ("alpha", "bravo", "charlie", "delta")]

    for daphne in daphnes:
        layer.send(daphne + "socket", {"value": 1})
        layer.group_add("room", daphne + "socket")

    for daphne in daphnes:
        shard = layer.consistent_hash(daphne)
        assert clients[shard].llen(layer.prefix + daphne) == 1
        assert clients[1 - shard].llen(layer.prefix + daphne) == 0
    group_shard = layer.consistent_hash("room")
    assert clients[group_shard].zcard(layer._group_key("room")) == 4
    assert not clients[1 - group_shard].exists(layer._group_key("room"))


def test_ordinary_channels_are_received_from_every_shard(make_layer, redis_two):
    layer = make_layer(redis_two)
    for number in range(6):
        layer.send("http.request", {"n": number})
    clients = [raw_client(server) for server in redis_two]
    assert [client.llen(layer.prefix + "http.request") for client in clients] == [3, 3]

    # asgi_redis would answer from one shard per call, and nothing if that one is empty.
    received = [layer.receive(["http.request"]) for _ in range(6)]

    assert sorted(message["n"] for _, message in received) == list(range(6))


def test_a_blocking_receive_waits_on_every_shard_an_ordinary_channel_may_be_sent_to(make_layer, redis_two):
    """Sends spread ordinary channels over the shards, so a worker that waited on one shard
    alone would hear of a message on the other only after blpop_timeout."""
    layer = make_layer(redis_two)
    plan = layer._receive_plan(["websocket.connect", "websocket.receive"], block=True)
    waits, reply = [], None
    try:
        while True:
            call = plan.send(reply)
            if isinstance(call, _Wait):
                waits.append((call.index, call.timeout))
                reply = None  # BLPOP timed out
            else:
                reply = [0]  # TAKE found nothing
    except StopIteration as done:
        assert done.value == (None, None)

    assert sorted(index for index, _ in waits) == [0, 1]
    # In turn, a short while each, so that neither shard waits on the other for long.
    assert {timeout for _, timeout in waits} == {1}


def test_channel_statistics_report_pending_messages_and_their_age(make_layer):
    layer = make_layer(expiry=30)
    layer.send(DAPHNE + "a", {"value": 1})
    layer.send(DAPHNE + "b", {"value": 2})

    statistics = layer.channel_statistics(DAPHNE)

    assert statistics["messages_count"] == 2
    assert statistics["messages_pending"] == 2
    assert 0 <= statistics["messages_max_age"] <= 30
    assert statistics["channel_full_count"] == 0


def test_a_pending_message_whose_body_expired_has_no_age(make_layer, redis_one):
    """The oldest entry's body gone (expired before its entry was taken) is no message waiting
    for ever: redis-py 3+ answers TTL -2 there, which once read as an age of expiry + 2 s and
    made enforce_ordering close every socket that parked a frame ("parked for 62 s")."""
    layer = make_layer(expiry=60)
    layer.send(DAPHNE + "a", {"value": 1})
    client = raw_client(redis_one)
    (entry,) = client.lrange(layer.prefix + DAPHNE, 0, -1)
    client.delete(layer.prefix + entry.decode("utf8").partition("|")[0])

    assert layer.channel_statistics(DAPHNE)["messages_max_age"] == 0


def test_the_sites_channel_layer_config_builds_this_layer(redis_one):
    """CHANNEL_LAYERS["default"]["CONFIG"] holds only keys this layer takes."""
    config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [redis_one.url], **unique_prefixes()}
    layer = FanoutRedisChannelLayer(**config)
    try:
        layer.send(DAPHNE + "socket", {"value": 1})
        assert layer.receive([DAPHNE]) == (DAPHNE + "socket", {"value": 1})
    finally:
        layer.flush()
