"""channels1_kit.channel_sessions: channel sessions in the channel layer's Redis, on Django 2.2 and 5.2."""

import pytest
from channels.sessions import session_for_reply_channel
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
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


def test_a_session_is_kept_as_plain_json_and_one_signed_by_an_older_release_still_reads(layer):
    store = socket_store("chn" + "c" * 29)
    store["rooms"] = [3]
    store.save(must_create=True)
    assert store._read("chn" + "c" * 29) == '{"rooms":[3]}'

    # What the release before kept: Django's signed, compressed form.
    signed = SessionBase.encode(channel_sessions.SessionStore(), {"rooms": [4], "_auth_user_id": "7"})
    assert not signed.startswith("{")
    assert channel_sessions.SessionStore().decode(signed) == {"rooms": [4], "_auth_user_id": "7"}
    assert channel_sessions.SessionStore().decode("{not json") == {}


@override_settings(CHANNELS1_KIT_CHANNEL_SESSION_SECONDS=120)
def test_it_lives_in_the_layers_redis_under_its_prefix_for_minutes_not_the_cookie_age(redis_server, monkeypatch):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="sessions-test:")
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    store = socket_store("chn" + "c" * 29)
    store["x"] = 1
    store.save(must_create=True)

    redis = layer.connection(layer.consistent_hash(store.session_key))
    ttl = redis.ttl(f"sessions-test::session:{store.session_key}")
    assert 110 < ttl <= 120
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


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_a_sockets_session_key_is_the_one_channels_gives_it(layer):
    assert channel_sessions.session_key_for(REPLY) == session_for_reply_channel(REPLY).session_key


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_forget_deletes_the_sessions_of_the_sockets_named(layer):
    for reply in (REPLY, REPLY + "2"):
        session_for_reply_channel(reply).save(must_create=True)

    channel_sessions.forget([REPLY])

    assert not channel_sessions.SessionStore().exists(channel_sessions.session_key_for(REPLY))
    assert channel_sessions.SessionStore().exists(channel_sessions.session_key_for(REPLY + "2"))


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions", CHANNELS1_KIT_CHANNEL_SESSION_SECONDS=90)
def test_a_daphne_renews_its_open_sockets_sessions_once_a_third_of_their_expiry_has_passed(redis_server, monkeypatch):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="sessions-test:")
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    monkeypatch.setattr(channel_sessions, "_renewed_at", {})
    daphne = REPLY.partition("!")[0] + "!"
    open_, closed = daphne + "open", daphne + "closed"
    for reply in (open_, closed):
        session_for_reply_channel(reply).save(must_create=True)
    redis = layer.connection(0)
    key = lambda reply: channel_sessions.redis_key(layer, channel_sessions.session_key_for(reply))  # noqa: E731
    for reply in (open_, closed):
        redis.expire(key(reply), 10)
    channel_sessions.forget([closed])

    # The open socket's is renewed to the whole expiry; the deleted one is not brought back.
    assert channel_sessions.refresh(layer, daphne, [open_, closed], now=1000.0) == 1
    assert redis.ttl(key(open_)) > 80
    assert not redis.exists(key(closed))
    # Not again until 30 s (a third of 90) have passed.
    redis.expire(key(open_), 10)
    assert channel_sessions.refresh(layer, daphne, [open_], now=1029.0) is None
    assert redis.ttl(key(open_)) <= 10
    assert channel_sessions.refresh(layer, daphne, [open_], now=1030.0) == 1
    assert redis.ttl(key(open_)) > 80
    layer.flush()


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_a_frames_session_is_read_once_from_redis(redis_server, monkeypatch):
    """channels loads a frame's session and then asks whether it exists: one GET, not two."""
    import redis

    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="sessions-reads:")
    monkeypatch.setattr(channel_sessions, "channel_layer", lambda: layer)
    key = channel_sessions.session_key_for(REPLY)
    made = socket_store(key)
    made["rooms"] = [7]
    made.save(must_create=True)
    stats = redis.Redis(port=redis_server.port)

    def gets() -> int:
        return int(stats.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    before = gets()
    session = session_for_reply_channel(REPLY)
    assert session.exists(session.session_key)
    assert session["rooms"] == [7]
    assert gets() - before == 1
    # A key it did not read is still asked about, and so is its own key a second time.
    assert not session.exists("chn" + "z" * 29)
    channel_sessions.SessionStore().delete(key)
    assert not session.exists(session.session_key)
    assert gets() - before == 3
    # A new socket's first frame: nothing found by the load, so nothing there, one GET again.
    before = gets()
    fresh = session_for_reply_channel(REPLY + "new")
    assert not fresh.exists(fresh.session_key)
    assert gets() - before == 1
    fresh.save(must_create=True)
    assert fresh.exists(fresh.session_key)
    layer.flush()


@override_settings(CHANNEL_SESSION_ENGINE="channels1_kit.channel_sessions")
def test_a_session_another_worker_created_after_the_load_is_not_overwritten(layer):
    """The load found nothing, another worker created the session, then this one asked whether it
    exists: its create fails (channels retries the frame, which then reads the other's session)."""
    session = session_for_reply_channel(REPLY + "race")
    other = session_for_reply_channel(REPLY + "race")
    other.save(must_create=True)
    other["next_order"] = 1
    other.save()
    assert not session.exists(session.session_key)
    with pytest.raises(CreateError):
        session.save(must_create=True)
    assert session_for_reply_channel(REPLY + "race")["next_order"] == 1
