"""channels1_kit.client_budgets: budgets per client, against a real Redis, and as daphne's layer applies them."""

import hashlib
import json

import pytest
import redis
from autobahn.websocket.types import ConnectionDeny
from django.test import override_settings
from twisted.internet import task

from channels1_kit.client_budgets import (
    ADDRESS,
    AWAY,
    CLOSE_GO_AWAY,
    PASS,
    REFUSE,
    SESSION,
    ClientBudgets,
    Identity,
    identities,
)
from channels1_kit.interface import InterfaceLayer
from fanout_layer import FanoutRedisChannelLayer
from tests.fanout_layer.support import unique_prefixes
from tools.processes import RedisServer, wait_until

SEND_CHANNEL = "daphne.response.AbCdEfGhIj!"
# Small budgets, so that a test goes over them in a few calls; each test says what it changes.
SMALL = {
    "CHANNELS1_KIT_HANDSHAKE_BURST": 3,
    "CHANNELS1_KIT_HANDSHAKE_RATE": 1,
    "CHANNELS1_KIT_HANDSHAKE_AWAY_AFTER": 4,
    "CHANNELS1_KIT_CLIENT_SOCKETS": 4,
    "CHANNELS1_KIT_CLIENT_FRAME_BURST": 5,
    "CHANNELS1_KIT_CLIENT_FRAME_RATE": 1,
    "CHANNELS1_KIT_CLIENT_AWAY_SECONDS": 60,
    "CHANNELS1_KIT_ADDRESS_CLIENTS": 10,
    "CHANNELS1_KIT_FLOOD_CLOSE_AFTER": 6,
}


def connect_message(name: str, *, address="203.0.113.5", session=None, forwarded=None) -> dict:
    headers = [(b"origin", b"http://127.0.0.1")]
    if session is not None:
        headers.append((b"cookie", f"csrftoken=abc; sessionid={session}".encode()))
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    return {
        "reply_channel": SEND_CHANNEL + name,
        "path": "/chat/stream/",
        "headers": headers,
        "client": [address, 0 if forwarded else 40000],
        "order": 0,
    }


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("budgets-redis"), name="budgets-redis") as server:
        yield server


@pytest.fixture
def small():
    with override_settings(**SMALL):
        yield


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def connection(redis_server):
    client = redis.StrictRedis(port=redis_server.port)
    client.flushall()
    return client


def budgets(connection, clock, *, proxy_headers=False) -> ClientBudgets:
    """One daphne's budgets; several made on one Redis are several daphnes."""
    return ClientBudgets(now=clock.seconds, connection=lambda: connection, prefix="t:", proxy_headers=proxy_headers)


# Who a client is


def test_a_client_is_its_session_cookie_hashed_and_always_its_address():
    found = identities(connect_message("a", session="k" * 32), proxy_headers=False)
    assert found == (
        Identity(SESSION, hashlib.sha256(b"k" * 32).hexdigest()[:32]),
        Identity(ADDRESS, "203.0.113.5"),
    )
    assert "k" * 32 not in repr(found)
    assert identities(connect_message("b"), proxy_headers=False) == (Identity(ADDRESS, "203.0.113.5"),)
    # A message with no client and no cookie (a test's) is nobody: no budget applies.
    assert identities({"reply_channel": "x", "path": "/"}, proxy_headers=False) == ()


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended():
    """daphne's --proxy-headers hands the consumers the first X-Forwarded-For entry, which the client
    can write itself; the proxy in front of daphne appends the address it saw, last."""
    message = connect_message("a", address="198.51.100.1", forwarded="198.51.100.1, 192.0.2.44")
    assert identities(message, proxy_headers=True) == (Identity(ADDRESS, "192.0.2.44"),)
    # Without --proxy-headers the header is the client's own words: the peer counts.
    direct = connect_message("b", address="192.0.2.9", forwarded="10.0.0.1")
    assert identities(direct, proxy_headers=False) == (Identity(ADDRESS, "192.0.2.9"),)


def test_an_ipv6_address_counts_by_its_64_and_a_mapped_ipv4_as_itself():
    one = identities(connect_message("a", address="2001:db8:1:2::5"), proxy_headers=False)
    other = identities(connect_message("b", address="2001:db8:1:2:ffff::9"), proxy_headers=False)
    assert one == other == (Identity(ADDRESS, "2001:db8:1:2::/64"),)
    mapped = identities(connect_message("c", address="::ffff:192.0.2.7"), proxy_headers=False)
    assert mapped == (Identity(ADDRESS, "192.0.2.7"),)


# Handshakes, shared by every daphne through Redis


@override_settings(CHANNELS1_KIT_HANDSHAKE_AWAY_AFTER=100)  # the polling below is no flood
def test_handshakes_over_the_burst_are_refused_on_every_daphne_until_the_bucket_refills(connection, clock, small):
    first, second = budgets(connection, clock), budgets(connection, clock)
    session = "s" * 32
    verdicts = [
        daphne.handshake(connect_message(str(n), session=session)) for n, daphne in enumerate([first, second] * 2)
    ]
    assert [verdict.verdict for verdict in verdicts] == [PASS, PASS, PASS, REFUSE]
    assert verdicts[-1].retry_after == 1
    # Another person at the same address has budgets of their own.
    assert second.handshake(connect_message("other", session="o" * 32)).verdict == PASS
    # One handshake a second: Redis's clock refills the bucket.
    wait_until(
        lambda: first.handshake(connect_message("again", session=session)).verdict == PASS,
        timeout=5,
        interval=0.2,
        message="a token back",
    )


def test_a_client_that_keeps_going_is_sent_away_everywhere_and_asks_redis_no_more(connection, clock, small):
    first = budgets(connection, clock)
    calls = []
    second = ClientBudgets(
        now=clock.seconds, connection=lambda: calls.append(1) or connection, prefix="t:", proxy_headers=False
    )
    session = "s" * 32
    verdicts = [first.handshake(connect_message(str(n), session=session)).verdict for n in range(3 + 4)]
    assert verdicts == [PASS] * 3 + [REFUSE] * 3 + [AWAY]
    # The other daphne learns it from Redis, with how long is left...
    away = second.handshake(connect_message("elsewhere", session=session))
    assert away.verdict == AWAY and 58 <= away.retry_after <= 60
    # ...and keeps it: the client's retries cost no round trip.
    asked = len(calls)
    assert second.handshake(connect_message("retry", session=session)).verdict == AWAY
    assert len(calls) == asked
    # It comes back when the time is up.
    clock.advance(61)
    second.prune()
    assert second.sizes()["away"] == 0


def test_invented_session_cookies_still_count_against_the_address(connection, clock, small):
    daphne = budgets(connection, clock)
    # An address stands for ADDRESS_CLIENTS sessions: ten times the burst.
    verdicts = [daphne.handshake(connect_message(str(n), session=f"{n:032d}")).verdict for n in range(31)]
    assert verdicts == [PASS] * 30 + [REFUSE]
    assert daphne.handshake(connect_message("elsewhere", address="192.0.2.200")).verdict == PASS


def test_a_handshake_budget_entry_in_redis_expires_within_seconds(connection, clock, small):
    daphne = budgets(connection, clock)
    daphne.handshake(connect_message("a", session="s" * 32))
    keys = sorted(key.decode() for key in connection.keys("t:budget:*"))
    assert keys == ["t:budget:address:203.0.113.5", "t:budget:session:" + hashlib.sha256(b"s" * 32).hexdigest()[:32]]
    # One token short: refilled within a second; kept for the 10 s window of refusals at most.
    assert all(0 < connection.pttl(key) <= 11_000 for key in keys)


def test_a_redis_that_cannot_be_reached_lets_handshakes_through(clock, small):
    gone = redis.StrictRedis(port=1, socket_connect_timeout=1)
    daphne = ClientBudgets(now=clock.seconds, connection=lambda: gone, prefix="t:", proxy_headers=False)
    assert daphne.handshake(connect_message("a", session="s" * 32)).verdict == PASS


# Open sockets and frames, on one daphne


@override_settings(CHANNELS1_KIT_CLIENT_SOCKETS=2)
def test_open_sockets_per_client_are_limited_on_each_daphne(connection, clock, small):
    daphne = budgets(connection, clock)
    session = "s" * 32
    for name in ("a", "b"):
        decision = daphne.handshake(connect_message(name, session=session))
        daphne.opened(SEND_CHANNEL + name, decision.identities)
    third = daphne.handshake(connect_message("c", session=session))
    assert third.verdict == REFUSE and third.retry_after == 10
    daphne.closed(SEND_CHANNEL + "a")
    assert daphne.handshake(connect_message("c", session=session)).verdict == PASS


def test_a_clients_sockets_share_one_frame_budget_and_a_flood_sends_it_away(connection, clock, small):
    daphne = budgets(connection, clock)
    session = "s" * 32
    for name in ("a", "b"):
        daphne.opened(SEND_CHANNEL + name, daphne.handshake(connect_message(name, session=session)).identities)
    daphne.opened(SEND_CHANNEL + "other", daphne.handshake(connect_message("other", session="o" * 32)).identities)

    passed = [daphne.frame(SEND_CHANNEL + name).passed for name in "ababab"]
    assert passed == [True] * 5 + [False]
    # Another client at the same address is not held back.
    assert daphne.frame(SEND_CHANNEL + "other").passed
    decisions = [daphne.frame(SEND_CHANNEL + "a") for _ in range(5)]
    sent_away = decisions[-1].send_away
    assert [decision.send_away for decision in decisions[:-1]] == [None] * 4
    assert sent_away is not None and sent_away.kind == SESSION

    seconds, sockets = daphne.send_away(sent_away)
    assert seconds == 60 and sockets == [SEND_CHANNEL + "a", SEND_CHANNEL + "b"]
    assert not daphne.frame(SEND_CHANNEL + "b").passed
    # Every daphne refuses its handshakes now.
    assert budgets(connection, clock).handshake(connect_message("c", session=session)).verdict == AWAY
    # Its sockets' disconnects forget them.
    for name in "ab":
        daphne.closed(SEND_CHANNEL + name)
    assert daphne.sizes()["sent_away"] == 0


def test_an_address_sent_away_for_its_handshakes_keeps_the_open_sockets_it_shares_working(connection, clock, small):
    """An anonymous client reconnecting in a loop gets its address sent away: the new handshakes
    from that address are, but a logged-in socket already open there (someone else behind the
    same NAT) goes on under its own frame budget, and so does any open socket of the address."""
    daphne = budgets(connection, clock)
    bystander = SEND_CHANNEL + "bystander"
    daphne.opened(bystander, daphne.handshake(connect_message("bystander", session="b" * 32)).identities)
    anonymous = SEND_CHANNEL + "anonymous"
    daphne.opened(anonymous, daphne.handshake(connect_message("anonymous")).identities)
    verdicts = [daphne.handshake(connect_message(f"loop{n}")).verdict for n in range(80)]
    assert AWAY in verdicts and verdicts[-1] == AWAY
    assert daphne.handshake(connect_message("new tab", session="b" * 32)).verdict == AWAY

    assert daphne.frame(bystander).passed and daphne.frame(anonymous).passed
    # Their frame budgets still hold: the bystander's own burst, then refusals that tell it.
    decisions = [daphne.frame(bystander) for _ in range(5)]
    assert [decision.passed for decision in decisions] == [True] * 4 + [False]
    assert decisions[-1].tell


def test_nothing_is_kept_for_a_client_once_it_is_gone_and_its_buckets_are_full(connection, clock, small):
    daphne = budgets(connection, clock)
    daphne.opened(SEND_CHANNEL + "a", daphne.handshake(connect_message("a", session="s" * 32)).identities)
    for _ in range(3):
        daphne.frame(SEND_CHANNEL + "a")
    daphne.turn_away(SEND_CHANNEL + "refused")
    daphne.closed(SEND_CHANNEL + "a")
    daphne.prune()
    # Its buckets are not full yet: forgetting them would hand it a fresh burst.
    assert daphne.sizes()["frame_buckets"] == 2
    clock.advance(61)
    daphne.prune()
    assert daphne.sizes() == {
        "sockets": 0,
        "identities": 0,
        "frame_buckets": 0,
        "told": 0,
        "away": 0,
        "sent_away": 0,
        "turned_away": 0,
    }


# As daphne's layer applies them


@pytest.fixture
def channel_layer(redis_server):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], **unique_prefixes())
    yield layer
    layer.flush()


@pytest.fixture
def interface(channel_layer, clock):
    return InterfaceLayer(channel_layer, clock=clock)


def connects_sent(channel_layer) -> int:
    return channel_layer.channel_statistics("websocket.connect")[channel_layer.STAT_MESSAGES_COUNT]


def test_a_handshake_over_budget_is_refused_429_with_retry_after_and_never_enters_redis(
    channel_layer, interface, small
):
    session = "s" * 32
    for n in range(3):
        interface.send("websocket.connect", connect_message(str(n), session=session))
    assert connects_sent(channel_layer) == 3
    with pytest.raises(ConnectionDeny) as refused:
        interface.send("websocket.connect", connect_message("late", session=session))
    # autobahn writes the reason into the status line: "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1".
    assert refused.value.code == 429
    assert refused.value.reason == "Too Many Requests\r\nRetry-After: 1"
    # Neither the connect nor what daphne sends for that socket afterwards reaches a worker.
    interface.send("websocket.disconnect", {"reply_channel": SEND_CHANNEL + "late", "path": "/", "order": 1})
    assert connects_sent(channel_layer) == 3
    assert channel_layer.channel_statistics("websocket.disconnect")[channel_layer.STAT_MESSAGES_COUNT] == 0


def test_a_client_sent_away_is_answered_by_daphne_with_4430_and_how_long_to_wait(
    channel_layer, interface, clock, small
):
    session = "s" * 32
    for n in range(3 + 3):  # three pass, three are refused...
        try:
            interface.send("websocket.connect", connect_message(str(n), session=session))
        except ConnectionDeny:
            pass
    # ...and the fourth refusal (HANDSHAKE_AWAY_AFTER) sends the client away.
    interface.send("websocket.connect", connect_message("away", session=session))
    assert connects_sent(channel_layer) == 3
    # daphne makes the handshake's Deferred after send returns: the answer comes a turn later.
    clock.advance(0)
    channel, reply = interface.receive_twisted([SEND_CHANNEL]).result
    assert channel == SEND_CHANNEL + "away"
    assert reply["accept"] is True and reply["close"] == CLOSE_GO_AWAY
    frame = json.loads(reply["text"])
    assert frame["error"] == "too-many-connections" and 58 <= frame["retry_after"] <= 60
    # Its frames and its disconnect are dropped: no worker ever heard of it.
    interface.send("websocket.receive", {"reply_channel": SEND_CHANNEL + "away", "path": "/", "order": 1, "text": "x"})
    assert channel_layer.channel_statistics("websocket.receive")[channel_layer.STAT_MESSAGES_COUNT] == 0


def test_a_flooding_clients_sockets_are_all_closed_and_the_frames_that_pass_keep_an_unbroken_order(
    channel_layer, interface, clock, small
):
    session = "s" * 32
    for name in ("a", "b"):
        interface.send("websocket.connect", connect_message(name, session=session))
    interface.send("websocket.connect", connect_message("calm", session="c" * 32))
    orders = {"a": 0, "b": 0}

    def frame(name: str) -> None:
        orders[name] += 1
        interface.send(
            "websocket.receive",
            {"reply_channel": SEND_CHANNEL + name, "path": "/", "order": orders[name], "text": "{}"},
        )

    for name in "ababab":  # five pass, the sixth is refused by the client's budget
        frame(name)
    channel, told = interface.receive_twisted([SEND_CHANNEL]).result
    assert channel == SEND_CHANNEL + "b" and "Too many frames from this client" in json.loads(told["text"])["message"]
    for _ in range(5):  # FLOOD_CLOSE_AFTER (6) refusals within 10 s: sent away
        frame("a")
    # "a" was told once, as "b" was; then both are closed, and told for how long to stay away.
    replies = [interface.receive_twisted([SEND_CHANNEL]).result for _ in range(3)]
    assert [(channel[len(SEND_CHANNEL) :], reply.get("close")) for channel, reply in replies] == [
        ("a", None),
        ("a", CLOSE_GO_AWAY),
        ("b", CLOSE_GO_AWAY),
    ]
    assert json.loads(replies[1][1]["text"])["retry_after"] == 60
    # The calm client's socket goes on, and the sockets' disconnects reach the workers numbered
    # past only the frames that did: a worker's enforce_ordering waits for no gap.
    interface.send("websocket.receive", {"reply_channel": SEND_CHANNEL + "calm", "path": "/", "order": 1, "text": "{}"})
    interface.send("websocket.disconnect", {"reply_channel": SEND_CHANNEL + "b", "path": "/", "order": orders["b"] + 1})
    received = []
    while True:
        got = channel_layer.receive(["websocket.receive", "websocket.disconnect"], block=False)
        if got[0] is None:
            break
        received.append((got[0], got[1]["reply_channel"][len(SEND_CHANNEL) :], got[1]["order"]))
    assert sorted((entry for entry in received if entry[1] == "b"), key=lambda entry: entry[2]) == [
        ("websocket.receive", "b", 1),
        ("websocket.receive", "b", 2),
        ("websocket.disconnect", "b", 3),
    ]
    assert ("websocket.receive", "calm", 1) in received
