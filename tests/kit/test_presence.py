"""channels1_kit.presence: who is in a group, in the layer's Redis (and, without Redis, in the process).

Every rule is checked on both stores: the Lua scripts against a real redis-server, and the
in-process store that a layer without Redis uses.
"""

import pytest
from django.test import override_settings

from channels1_kit import presence, sockets
from channels1_kit.asgi1.inmemory import ChannelLayer as InMemoryLayer
from fanout_layer import FanoutRedisChannelLayer
from tools.processes import RedisServer

ROOM = "chat.room.1"
OTHER = "chat.room.2"


def socket(name: str) -> str:
    return f"daphne.response.AbCdEfGhIj!{name}"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("presence-redis"), name="presence-redis") as server:
        yield server


@pytest.fixture(params=["redis", "in-process"])
def layer(request, monkeypatch):
    if request.param == "redis":
        layer = FanoutRedisChannelLayer(hosts=[request.getfixturevalue("redis_server").url], prefix="presence-test:")
    else:
        layer = InMemoryLayer()
        monkeypatch.setattr(presence, "_local", presence._LocalStore())
    monkeypatch.setattr(presence, "channel_layer", lambda: layer)
    yield layer
    if request.param == "redis":
        layer.connection(0).flushdb()


@pytest.fixture
def announced(monkeypatch):
    """What the kit tells the registered app on its own (graces that ran out)."""
    heard = []
    monkeypatch.setattr(presence, "_apps", {})
    presence.register("chat", prefix="chat.room.", announce=heard.append, groups=lambda: [ROOM, OTHER])
    yield heard
    presence.unregister("chat")


def test_people_are_counted_once_however_many_sockets_they_have(layer):
    first = presence.join(ROOM, socket=socket("a1"), user="1")
    second_tab = presence.join(ROOM, socket=socket("a2"), user="1")
    bob = presence.join(ROOM, socket=socket("b1"), user="2")

    assert (first.announce, first.members) == ("joined", 1)
    assert (second_tab.announce, second_tab.members, second_tab.seq) == (None, 1, first.seq)
    assert (bob.announce, bob.members) == ("joined", 2)
    assert bob.seq > first.seq
    assert presence.members(ROOM) == 2
    assert presence.counts([ROOM, OTHER]) == {ROOM: 2, OTHER: 0}
    assert presence.state([ROOM, OTHER]) == {ROOM: (2, bob.seq), OTHER: (0, 0)}
    assert sorted(presence.sockets_in(ROOM)) == sorted([socket("a1"), socket("a2"), socket("b1")])


def test_joining_twice_changes_nothing(layer):
    once = presence.join(ROOM, socket=socket("a1"), user="1")
    again = presence.join(ROOM, socket=socket("a1"), user="1")
    assert (again.announce, again.members, again.seq) == (None, 1, once.seq)


def test_a_leave_the_person_asks_for_is_at_once_and_only_with_their_last_socket(layer):
    presence.join(ROOM, socket=socket("a1"), user="1")
    presence.join(ROOM, socket=socket("a2"), user="1")
    joined = presence.join(ROOM, socket=socket("b1"), user="2")

    one_tab = presence.leave(ROOM, socket=socket("a1"))
    assert (one_tab.announce, one_tab.user, one_tab.members, one_tab.seq) == (None, "1", 2, joined.seq)
    last = presence.leave(ROOM, socket=socket("a2"))
    assert (last.announce, last.user, last.members) == ("left", "1", 1)
    assert last.seq > joined.seq
    assert presence.leave(ROOM, socket=socket("a2")) is None


@override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=15)
def test_a_socket_back_within_the_grace_is_no_leave_and_no_join(layer, announced):
    joined = presence.join(ROOM, socket=socket("a1"), user="1")
    presence.join(OTHER, socket=socket("a1"), user="1")

    gone = presence.disconnect(socket("a1"))
    assert sorted((change.group, change.announce, change.members) for change in gone) == [
        (ROOM, None, 1),
        (OTHER, None, 1),
    ]
    assert presence.members(ROOM) == 1
    back = presence.join(ROOM, socket=socket("a1-again"), user="1")
    assert (back.announce, back.members, back.seq) == (None, 1, joined.seq)

    # Long after the grace: the room the person came back to keeps them; the other one lets them go.
    expired = presence.reap(now=presence.time.time() + 60)
    assert [(change.group, change.user, change.members, change.announce) for change in expired] == [
        (OTHER, "1", 0, "left")
    ]
    assert announced == expired
    assert presence.members(ROOM) == 1 and presence.members(OTHER) == 0


@override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=15)
def test_a_grace_that_runs_out_is_a_leave_told_once(layer, announced):
    presence.join(ROOM, socket=socket("a1"), user="1")
    presence.join(ROOM, socket=socket("b1"), user="2")
    before = presence.disconnect(socket("a1"))[0]

    assert presence.reap(now=presence.time.time() + 1) == []
    expired = presence.reap(now=presence.time.time() + 16)
    assert [(change.user, change.members, change.announce) for change in expired] == [("1", 1, "left")]
    assert expired[0].seq > before.seq
    assert presence.reap(now=presence.time.time() + 60) == []
    assert announced == expired


@override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=0)
def test_without_a_grace_a_disconnect_is_a_leave(layer):
    presence.join(ROOM, socket=socket("a1"), user="1")
    (change,) = presence.disconnect(socket("a1"))
    assert (change.announce, change.members) == ("left", 0)
    assert presence.disconnect(socket("a1")) == []


def test_dropping_a_group_forgets_it_and_gives_its_sockets(layer):
    presence.join(ROOM, socket=socket("a1"), user="1")
    presence.join(ROOM, socket=socket("b1"), user="2")
    presence.join(OTHER, socket=socket("a1"), user="1")

    assert presence.drop_group(ROOM) == sorted([socket("a1"), socket("b1")])
    assert presence.members(ROOM) == 0
    # The socket's other group is untouched, and its disconnect no longer names the dropped one.
    assert [change.group for change in presence.disconnect(socket("a1"))] == [OTHER]


@override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=15)
def test_the_sweep_takes_gone_sockets_out_with_the_grace_and_drops_groups_that_no_longer_exist(layer, announced):
    presence.join(ROOM, socket=socket("gone"), user="1")
    presence.join(ROOM, socket=socket("live"), user="2")
    presence.join("chat.room.99", socket=socket("live"), user="2")  # a room deleted meanwhile

    assert {name for name, _ in presence.all_sockets()} == {socket("gone"), socket("live")}
    removed = presence.forget_gone(gone=lambda channel, since: channel == socket("gone"))
    assert removed == 2
    assert presence.members("chat.room.99") == 0
    # Within the grace the person still counts; after it they are told gone.
    assert presence.members(ROOM) == 2
    expired = presence.reap(now=presence.time.time() + 60)
    assert [(change.user, change.members) for change in expired] == [("1", 1)]


@override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=0)
def test_without_a_grace_the_sweeps_leaves_are_told_at_once(layer, announced):
    presence.join(ROOM, socket=socket("gone"), user="1")
    presence.join(ROOM, socket=socket("live"), user="2")

    assert presence.forget_gone(gone=lambda channel, since: channel == socket("gone")) == 1

    assert [(change.announce, change.user, change.members) for change in announced] == [("left", "1", 1)]
    assert presence.reap(now=presence.time.time() + 60) == []


def test_registering_presence_puts_it_in_the_sweep(announced):
    assert "channels1_kit.presence" in {app.label for app in sockets.registered()}


def test_the_numbers_go_on_rising_after_redis_forgets_them(redis_server, monkeypatch):
    """An empty restart loses the counter; its new start (the clock) is above anything before."""
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="presence-test:")
    monkeypatch.setattr(presence, "channel_layer", lambda: layer)
    changes = [presence.join(ROOM, socket=socket(f"s{index}"), user=str(index)) for index in range(50)]
    layer.connection(0).flushdb()
    after = presence.join(ROOM, socket=socket("s0"), user="0")
    assert after.announce == "joined" and after.members == 1
    assert after.seq > changes[-1].seq
    layer.connection(0).flushdb()
