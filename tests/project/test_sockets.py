"""channels1_kit.sockets: which sockets are gone, and the sweep that removes their presence and memberships."""

import time
from unittest import mock

import pytest
from channels.test import TransactionChannelTestCase
from django.contrib.auth.models import User
from django.test import override_settings

from channels1_kit import presence, sockets
from channels1_kit.sockets import Liveness, Snapshot, daphne_of
from chat import services
from chat.models import LOBBY_GROUP
from fanout_layer import FanoutRedisChannelLayer
from liveblog import services as liveblog_services
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient
from tools.processes import RedisServer

LIVE = "daphne.response.LiveLiveLi!"
DEAD = "daphne.response.DeadDeadDe!"
NOW = 1_000_000.0


def liveness(**kwargs) -> Liveness:
    defaults = dict(
        snapshots={LIVE: Snapshot(at=NOW - 5, local_parts=frozenset({"open"}))},
        redis_uptime=3600,
        now=NOW,
        dead_after=30,
        clock_skew=10,
    )
    return Liveness(**{**defaults, **kwargs})


def test_daphne_of_names_the_daphne_process_of_a_reply_channel():
    assert daphne_of(LIVE + "abc") == LIVE
    assert daphne_of("websocket.receive") is None
    assert daphne_of("test!abc") is None  # a channel of another kind of process: never judged


def test_a_socket_its_daphne_still_lists_is_not_gone():
    assert not liveness().gone(LIVE + "open", NOW - 3600)


def test_a_socket_its_daphne_no_longer_lists_is_gone_once_the_list_is_newer_than_the_socket():
    assert liveness().gone(LIVE + "closed", NOW - 60)
    # Joined after the snapshot was taken (with the clock skew to spare): not judged yet.
    assert not liveness().gone(LIVE + "closed", NOW - 10)


def test_every_socket_of_a_daphne_silent_for_dead_after_is_gone():
    found = liveness()
    assert found.gone(DEAD + "anything", NOW - 60)
    assert found.gone_daphnes == {DEAD}
    # ...but not one that joined less than dead_after ago: its daphne may just have started.
    assert not liveness().gone(DEAD + "anything", NOW - 20)


def test_nothing_is_gone_for_lack_of_a_snapshot_while_redis_has_just_restarted():
    assert not liveness(redis_uptime=10).gone(DEAD + "anything", NOW - 3600)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("sweep-redis"), name="sweep-redis") as server:
        yield server


@pytest.fixture
def layer(redis_server):
    layer = FanoutRedisChannelLayer(hosts=[redis_server.url], prefix="sweep-test:", group_expiry=604800)
    yield layer
    layer.flush()


@pytest.fixture
def sweep_case(request, layer):
    request.cls.layer = layer


# The services' own Group sends (and so presence, kept in the process for a layer without Redis,
# fresh for each test: tests/conftest.py) use the in-memory layer; the sweep is given the Redis one.
@pytest.mark.usefixtures("sweep_case")
@override_settings(
    CHANNEL_LAYERS=IN_MEMORY_LAYERS, CHANNELS1_KIT_HEARTBEAT_SECONDS=10, CHANNELS1_KIT_CLOCK_SKEW_SECONDS=1
)
class SweepTests(TransactionChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="x")
        self.bob = User.objects.create_user("bob", password="x")
        self.room = services.room_create(title="General", slug="general")
        self.blog = liveblog_services.liveblog_create(title="Launch", slug="launch")

    def open_socket(self, channel: str, user=None, *, joined_ago: float = 120) -> None:
        """A socket as the consumers leave it: in the lobby and the liveblog's group, in the room."""
        then = time.time() - joined_ago
        if user is not None:
            # Counted in the room since `then`, as the sweep reads it (presence's "known since").
            with mock.patch("channels1_kit.presence.time") as clock:
                clock.time.return_value = then
                presence.join(self.room.group_name, socket=channel, user=str(user.pk))
            self._member(self.room.group_name, channel, then)
            self._member(LOBBY_GROUP, channel, then)
        else:
            self._member(self.blog.group_name, channel, then)

    def in_room(self) -> list:
        return sorted(presence.sockets_in(self.room.group_name))

    def _member(self, group: str, channel: str, then: float) -> None:
        self.layer.connection(0).zadd(self.layer._group_key(group), {channel: then})

    def members(self, group: str) -> set:
        return set(self.layer.group_channels(group))

    def test_the_sockets_of_a_killed_daphne_and_the_closed_ones_of_a_live_one_are_swept(self):
        self.open_socket(LIVE + "alice", self.alice)  # still open
        self.open_socket(LIVE + "bob", self.bob)  # closed, its disconnect lost
        self.open_socket(DEAD + "bob2", self.bob)  # its daphne was killed: it writes no snapshot
        self.open_socket(LIVE + "page")
        self.open_socket(DEAD + "page")
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "alice", LIVE + "page"], now=time.time())

        # A daphne is dead after 0 s of silence here: this Redis has been up long enough.
        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
            report = sockets.sweep(self.layer, now=time.time())

        self.assertEqual(self.in_room(), [LIVE + "alice"])
        self.assertEqual(self.members(self.room.group_name), {LIVE + "alice"})
        self.assertEqual(self.members(LOBBY_GROUP), {LIVE + "alice"})
        self.assertEqual(self.members(self.blog.group_name), {LIVE + "page"})
        # bob had two sockets in the room (bob, bob2): two presence entries; five memberships in all.
        self.assertEqual(
            report.as_dict(),
            {"rows": 2, "memberships": 5, "dead_daphnes": [DEAD], "legacy_closed": 0, "sessions": 2},
        )

    def test_the_sweep_deletes_the_channel_sessions_and_wait_statistics_of_a_dead_daphnes_sockets_only(self):
        from channels.sessions import session_for_reply_channel, wait_channel_name

        def session_of(channel: str):
            return session_for_reply_channel(channel)

        for channel in (LIVE + "alice", LIVE + "bob", DEAD + "bob2"):
            session_of(channel).save(must_create=True)
        self.open_socket(LIVE + "alice", self.alice)
        self.open_socket(LIVE + "bob", self.bob)  # closed, its disconnect maybe in a worker's hands
        self.open_socket(DEAD + "bob2", self.bob)
        # What enforce_ordering's wait channel leaves for an hour: the layer's statistics of it.
        wait_count = f"{self.layer.stats_prefix}{wait_channel_name(DEAD + 'bob2')}:messages_count"
        self.layer.connection(self.layer.consistent_hash(wait_channel_name(DEAD + "bob2"))).set(wait_count, 3)
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "alice"], now=time.time())

        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
            report = sockets.sweep(self.layer, now=time.time())

        self.assertEqual(report.sessions, 1)
        self.assertFalse(session_of(DEAD + "bob2").exists(session_of(DEAD + "bob2").session_key))
        self.assertFalse(self.layer.connection(0).exists(wait_count))
        # The live daphne's sockets keep theirs: the closed one's expires by itself.
        for channel in (LIVE + "alice", LIVE + "bob"):
            self.assertTrue(session_of(channel).exists(session_of(channel).session_key), channel)

    def test_a_second_sweep_finds_nothing_more(self):
        self.open_socket(DEAD + "bob", self.bob)
        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
            sockets.sweep(self.layer, now=time.time())
            again = sockets.sweep(self.layer, now=time.time())
        self.assertEqual(
            again.as_dict(), {"rows": 0, "memberships": 0, "dead_daphnes": [], "legacy_closed": 0, "sessions": 0}
        )

    def test_a_daphne_that_never_wrote_a_snapshot_loses_its_sockets_once_redis_has_been_up_long_enough(self):
        self.open_socket(DEAD + "bob", self.bob)
        self.open_socket(DEAD + "page")
        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):  # dead after 0 s: the server is old enough
            report = sockets.sweep(self.layer, now=time.time())
        self.assertEqual(
            report.as_dict(),
            {"rows": 1, "memberships": 3, "dead_daphnes": [DEAD], "legacy_closed": 0, "sessions": 2},
        )
        self.assertEqual(presence.all_sockets(), [])
        self.assertEqual(self.members(self.blog.group_name), set())

    def test_of_one_persons_two_tabs_only_the_closed_one_is_swept(self):
        self.open_socket(LIVE + "bob-tab-1", self.bob)
        self.open_socket(LIVE + "bob-tab-2", self.bob)
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "bob-tab-2"], now=time.time())

        room = StreamClient("/chat/stream/")
        room.join_group(self.room.group_name)

        sockets.sweep(self.layer, now=time.time())
        presence.reap(now=time.time() + presence.grace_seconds() + 1)

        self.assertEqual(self.in_room(), [LIVE + "bob-tab-2"])
        # bob is still here on his other tab: nobody hears he left.
        self.assertEqual(presence.members(self.room.group_name), 1)
        self.assertEqual(room.frames(), [])

    def test_a_swept_persons_leave_is_announced_once_their_grace_ran_out(self):
        self.open_socket(LIVE + "alice", self.alice)
        self.open_socket(DEAD + "bob", self.bob)
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "alice"], now=time.time())
        room = StreamClient("/chat/stream/")
        room.join_group(self.room.group_name)

        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
            sockets.sweep(self.layer, now=time.time())

        # Gone as at a disconnect: bob stays counted for the grace, as a page reconnecting would.
        self.assertEqual(self.in_room(), [LIVE + "alice"])
        self.assertEqual(presence.members(self.room.group_name), 2)
        self.assertEqual(room.frames(), [])

        presence.reap(now=time.time() + presence.grace_seconds() + 1)

        left = room.frame()
        self.assertEqual((left["type"], left["username"], left["members"]), ("left", "bob", 1))
        self.assertEqual(presence.members(self.room.group_name), 1)

    @override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=0)
    def test_with_no_grace_a_swept_persons_leave_is_announced_at_once(self):
        self.open_socket(LIVE + "alice", self.alice)
        self.open_socket(DEAD + "bob", self.bob)
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "alice"], now=time.time())
        room = StreamClient("/chat/stream/")
        room.join_group(self.room.group_name)

        with override_settings(CHANNELS1_KIT_HEARTBEAT_SECONDS=0):
            sockets.sweep(self.layer, now=time.time())

        left = room.frame()
        self.assertEqual((left["type"], left["username"], left["members"]), ("left", "bob", 1))
        self.assertEqual(presence.members(self.room.group_name), 1)

    def test_the_presence_of_a_room_deleted_meanwhile_is_dropped(self):
        self.open_socket(LIVE + "alice", self.alice)
        sockets.write_snapshot(self.layer, LIVE, [LIVE + "alice"], now=time.time())
        group = self.room.group_name
        # Deleted with Redis away, say: its delete could not forget its presence.
        with mock.patch.object(presence, "drop_group", side_effect=ConnectionError("Redis away")):
            services.room_delete(room=self.room)
        self.assertEqual(presence.sockets_in(group), [LIVE + "alice"])

        report = sockets.sweep(self.layer, now=time.time())

        self.assertEqual(presence.sockets_in(group), [])
        self.assertEqual(presence.members(group), 0)
        self.assertEqual(report.rows, 1)


@pytest.fixture
def renamed_app():
    """An app that moved its sockets from "old.<name>" groups to "new.<name>" ones."""
    sockets.register("renamed", groups=lambda: ["new.a", "old.kept"], legacy_groups=lambda: ["old.a", "old.kept"])
    yield
    sockets.unregister("renamed")


@pytest.mark.django_db
@pytest.mark.usefixtures("renamed_app")
def test_sockets_in_a_legacy_group_are_closed_with_4503_and_the_group_emptied(layer):
    layer.group_add("old.a", LIVE + "one")
    layer.group_add("old.a", LIVE + "two")
    layer.group_add("new.a", LIVE + "three")
    # A name listed as legacy but still some app's current group is left alone.
    layer.group_add("old.kept", LIVE + "four")

    assert sockets.close_legacy_groups(layer) == 2

    assert set(layer.group_channels("old.a")) == set()
    assert set(layer.group_channels("new.a")) == {LIVE + "three"}
    assert set(layer.group_channels("old.kept")) == {LIVE + "four"}
    # A daphne receives its sockets' messages on its process-local prefix.
    received = [layer.receive([LIVE], block=False) for _ in range(3)]
    assert sorted(received[:2]) == [(LIVE + "one", {"close": 4503}), (LIVE + "two", {"close": 4503})]
    assert received[2] == (None, None)


@pytest.mark.django_db
@pytest.mark.usefixtures("renamed_app")
def test_the_close_legacy_groups_command_prints_how_many_it_closed(layer):
    from io import StringIO
    from unittest import mock

    from django.core.management import call_command

    out = StringIO()
    with mock.patch.object(sockets, "channel_layer", return_value=layer):
        layer.group_add("old.a", LIVE + "one")
        call_command("close_legacy_groups", stdout=out)
    assert out.getvalue().strip() == '{"legacy_closed": 1}'


def test_the_sweep_sockets_command_sweeps_once_and_prints_what_it_removed():
    from io import StringIO
    from unittest import mock

    from django.core.management import call_command

    out = StringIO()
    report = sockets.SweepReport(rows=2, memberships=5, dead_daphnes=[DEAD], sessions=3)
    with mock.patch.object(sockets, "sweep", return_value=report) as sweep:
        call_command("sweep_sockets", stdout=out)
    sweep.assert_called_once_with()
    assert out.getvalue().strip() == (
        f'{{"dead_daphnes": ["{DEAD}"], "legacy_closed": 0, "memberships": 5, "rows": 2, "sessions": 3}}'
    )
