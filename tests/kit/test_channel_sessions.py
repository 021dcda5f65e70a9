"""channels1_kit.channel_sessions: channel sessions in the channel layer's Redis, on Django 2.2 and 5.2."""

import pytest
from channels.sessions import session_for_reply_channel
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.test import override_settings

from channels1_kit import channel_sessions
from channels1_kit.asgi1.inmemory import ChannelLayer as InMemoryLayer
from fanout_layer import FanoutRedisChannelLayer
from tools.processes import RedisServer

REPLY = "daphne.response.AbCdEfGhIj!socket"


def socket_store(session_key: str) -> channel_sessions.SessionStore:
    """A store for a key of channels' choosing, made as session_for_reply_channel makes it (a
    store forgets a key it finds no session for, so the key is given back after loading)."""
    store = channel_sessions.SessionStore(session_key=session_key)
    store._session  # noqa: B018 (loads it, as channels does)
    store._session_key = session_key
    return store


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("sessions-redis"), name="sessions-redis") as server:
        yield server


@pytest.fixture(params=["redis", "in-process"])
def layer(request, monkeypatch):
    if request.param == "redis":
        layer = FanoutRedisChannelLayer(hosts=[request.getfixturevalue("redis_server").url], prefix="sessions-test:")
    else:
        layer = InMemoryLayer()
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    yield layer
    if request.param == "redis":
        layer.flush()
    channel_sessions._in_process.clear()


def test_a_saved_session_is_read_back_by_another_store(layer):
    store = socket_store("chn" + "a" * 29)
    store["rooms"] = [1, 2]
    store.save(must_create=True)

    again = socket_store("chn" + "a" * 29)
    assert again.load() == {"rooms": [1, 2]}
    assert again.exists("chn" + "a" * 29)
    assert not again.exists("chn" + "b" * 29)


def test_it_lives_in_the_layers_redis_under_its_prefix_and_expires_with_the_session(redis_server, monkeypatch):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="sessions-test:")
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    store = socket_store("chn" + "c" * 29)
    store["x"] = 1
    store.save(must_create=True)

    redis = layer.connection(layer.consistent_hash(store.session_key))
    ttl = redis.ttl(f"sessions-test::session:{store.session_key}")
    assert 0 < ttl <= store.get_expiry_age()
    layer.flush()


def test_creating_a_session_that_exists_fails_so_that_channels_retries_the_message(layer):
    socket_store("chn" + "d" * 29).save(must_create=True)
    with pytest.raises(CreateError):
        socket_store("chn" + "d" * 29).save(must_create=True)


def test_saving_a_session_deleted_meanwhile_does_not_bring_it_back(layer):
    store = socket_store("chn" + "e" * 29)
    store.save(must_create=True)
    channel_sessions.SessionStore().delete("chn" + "e" * 29)

    store["late"] = True
    with pytest.raises(UpdateError):
        store.save()
    assert not store.exists("chn" + "e" * 29)


def test_a_new_store_without_a_key_creates_one(layer):
    store = channel_sessions.SessionStore()
    store["a"] = 1
    store.save()
    assert store.session_key and store.exists(store.session_key)
    assert channel_sessions.SessionStore(session_key=store.session_key).load() == {"a": 1}


def test_an_expired_in_process_session_is_gone(monkeypatch):
    monkeypatch.setattr(channel_sessions, "channel_layer", InMemoryLayer)
    store = socket_store("chn" + "f" * 29)
    store.set_expiry(1)
    store.save(must_create=True)
    assert store.exists(store.session_key)
    now = channel_sessions.time.time()
    monkeypatch.setattr(channel_sessions.time, "time", lambda: now + 2)
    assert not store.exists(store.session_key)
    channel_sessions._in_process.clear()


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_channels_finds_a_sockets_session_again_by_its_reply_channel(layer):
    session = session_for_reply_channel(REPLY)
    assert not session.exists(session.session_key)
    session.save(must_create=True)
    session["next_order"] = 3
    session.save()

    assert dict(session_for_reply_channel(REPLY).load()) == {"next_order": 3}
