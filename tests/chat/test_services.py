"""chat.services: presence per socket, notices per person, messages broadcast after commit."""

import time

from channels.test import TransactionChannelTestCase
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

from channels1_kit import presence
from channels1_kit.websocket import ClientError
from chat import conf, services
from chat.models import LOBBY_GROUP, Message, Room
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient


class Rollback(Exception):
    pass


def unnumbered(frame: dict) -> dict:
    """A frame less its presence number ("seq"), which starts from the clock: tests compare seqs
    with each other, not with constants."""
    return {key: value for key, value in frame.items() if key != "seq"}


def listener(*groups: str) -> StreamClient:
    """A reply channel in the given groups, to see what the groups were sent."""
    client = StreamClient("/chat/stream/")
    for group in groups:
        client.join_group(group)
    return client


def conf_grace() -> float:
    return presence.grace_seconds()


# Transaction test case: broadcasts wait for a real commit, which TestCase never makes.
@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class ChatServicesTests(TransactionChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="x")
        self.bob = User.objects.create_user("bob", password="x")
        self.general = services.room_create(title="General", slug="general")
        self.staff = services.room_create(title="Staff", slug="staff", staff_only=True)
        self.room_watcher = listener(self.general.group_name)
        self.lobby = listener(LOBBY_GROUP)

    # -- joining and leaving ------------------------------------------------------------

    def in_room(self, room: Room = None) -> list:
        """The sockets the room's presence counts."""
        return sorted(presence.sockets_in((room or self.general).group_name))

    def test_room_join_records_the_socket_and_announces_the_person(self):
        joined = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")

        self.assertEqual(joined.members, 1)
        self.assertEqual(self.in_room(), ["sock.a"])
        self.assertEqual(presence.members(self.general.group_name), 1)
        self.assertEqual(
            self.room_watcher.frame(),
            {"type": "joined", "room": "general", "username": "alice", "members": 1, "seq": joined.seq},
        )
        self.assertEqual(self.lobby.frame(), {"type": "presence", "room": "general", "members": 1, "seq": joined.seq})

    def test_room_join_puts_the_socket_in_the_room_group(self):
        socket = StreamClient("/chat/stream/")
        services.room_join(room=self.general, user=self.alice, reply_channel=socket.reply_channel)

        services.message_send(room=self.general, user=self.bob, text="hi alice")

        frames = socket.frames()
        self.assertEqual([f["type"] for f in frames], ["joined", "message"])
        self.assertEqual(frames[1]["message"], "hi alice")

    def test_joining_twice_on_one_socket_changes_and_announces_nothing(self):
        first = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.room_watcher.frames(), self.lobby.frames()

        self.assertEqual(
            services.room_join(room=self.general, user=self.alice, reply_channel="sock.a"),
            services.Joined(members=1, seq=first.seq),
        )

        self.assertEqual(self.in_room(), ["sock.a"])
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

    def test_a_second_socket_of_the_same_person_counts_once_and_is_not_news(self):
        joined = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.room_watcher.frames(), self.lobby.frames()

        self.assertEqual(services.room_join(room=self.general, user=self.alice, reply_channel="sock.b").members, 1)
        self.assertEqual(self.in_room(), ["sock.a", "sock.b"])
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

        # Closing one of the two leaves alice in the room, so nobody hears she left.
        services.room_leave(room=self.general, reply_channel="sock.a", user=self.alice)
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

        services.room_leave(room=self.general, reply_channel="sock.b", user=self.alice)
        left = self.room_watcher.frame()
        self.assertEqual(unnumbered(left), {"type": "left", "room": "general", "username": "alice", "members": 0})
        self.assertGreater(left["seq"], joined.seq)
        self.assertEqual(self.lobby.frame(), {"type": "presence", "room": "general", "members": 0, "seq": left["seq"]})
        self.assertEqual(self.in_room(), [])

    def test_a_leave_names_the_person_without_being_told_who_it_is(self):
        services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.room_watcher.frames()

        services.room_leave(room=self.general, reply_channel="sock.a")

        self.assertEqual(self.room_watcher.frame()["username"], "alice")

    def test_notices_carry_the_count_of_people_after_each_change(self):
        services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        services.room_leave(room=self.general, reply_channel="sock.a", user=self.alice)

        notices = self.room_watcher.frames()
        self.assertEqual(
            [(f["type"], f["username"], f["members"]) for f in notices],
            [("joined", "alice", 1), ("joined", "bob", 2), ("left", "alice", 1)],
        )
        seqs = [f["seq"] for f in notices]
        self.assertEqual(seqs, sorted(set(seqs)), "strictly increasing")
        self.assertEqual(
            [(f["members"], f["seq"]) for f in self.lobby.frames()], list(zip([1, 2, 1], seqs, strict=True))
        )

    def test_room_leave_removes_the_socket_from_the_group(self):
        socket = StreamClient("/chat/stream/")
        services.room_join(room=self.general, user=self.alice, reply_channel=socket.reply_channel)
        services.room_leave(room=self.general, reply_channel=socket.reply_channel, user=self.alice)
        socket.frames()

        services.message_send(room=self.general, user=self.bob, text="anyone?")

        self.assertEqual(socket.frames(), [])
        self.assertEqual(self.in_room(), [])

    def test_leaving_a_room_the_socket_is_not_in_announces_nothing(self):
        services.room_leave(room=self.general, reply_channel="sock.nobody")

        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

    def test_staff_room_counts_are_not_sent_to_the_lobby(self):
        boss = User.objects.create_user("boss", password="x", is_staff=True)
        staff_watcher = listener(self.staff.group_name)

        services.room_join(room=self.staff, user=boss, reply_channel="sock.boss")

        self.assertEqual(staff_watcher.frame()["type"], "joined")
        self.assertEqual(self.lobby.frames(), [])

    def test_a_rolled_back_join_announces_nothing(self):
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
                raise Rollback()

        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

    def test_a_join_of_a_room_deleted_meanwhile_is_refused_and_counts_no_one(self):
        stale = Room.objects.get(pk=self.general.pk)
        services.room_delete(room=self.general)
        self.room_watcher.frames(), self.lobby.frames()

        with self.assertRaises(ClientError) as raised:
            services.room_join(room=stale, user=self.alice, reply_channel="sock.a")

        self.assertEqual(raised.exception.code, "room-not-found")
        self.assertEqual(self.in_room(stale), [])
        self.assertEqual(presence.members(stale.group_name), 0)
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

    # -- disconnects: the grace ---------------------------------------------------------

    def test_socket_leave_all_leaves_every_room_of_that_socket_only(self):
        boss = User.objects.create_user("boss", password="x", is_staff=True)
        services.room_join(room=self.general, user=boss, reply_channel="sock.boss")
        services.room_join(room=self.staff, user=boss, reply_channel="sock.boss")
        services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")

        groups = services.socket_leave_all(reply_channel="sock.boss")

        self.assertEqual(sorted(groups), sorted([self.general.group_name, self.staff.group_name]))
        self.assertEqual(self.in_room(self.general), ["sock.a"])
        self.assertEqual(self.in_room(self.staff), [])
        # Out of the rooms' groups: nothing sent to them reaches the socket.
        self.assertEqual(services.socket_leave_all(reply_channel="sock.boss"), [])

    def test_a_disconnect_keeps_the_person_counted_until_the_reaper_announces_the_leave(self):
        boss = User.objects.create_user("boss", password="x", is_staff=True)
        services.room_join(room=self.general, user=boss, reply_channel="sock.boss")
        joined = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.room_watcher.frames(), self.lobby.frames()

        services.socket_leave_all(reply_channel="sock.boss")

        # A page that reconnects within the grace must not show "left" then "joined".
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])
        self.assertEqual(presence.members(self.general.group_name), 2)
        self.assertEqual(presence.reap(), [])

        presence.reap(now=time.time() + conf_grace() + 1)

        left = self.room_watcher.frame()
        self.assertEqual(unnumbered(left), {"type": "left", "room": "general", "username": "boss", "members": 1})
        self.assertGreater(left["seq"], joined.seq)
        self.assertEqual(self.lobby.frame(), {"type": "presence", "room": "general", "members": 1, "seq": left["seq"]})
        self.assertEqual(presence.members(self.general.group_name), 1)

    def test_a_person_back_within_the_grace_neither_left_nor_joined(self):
        joined = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.room_watcher.frames(), self.lobby.frames()

        services.socket_leave_all(reply_channel="sock.a")
        again = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a-reconnected")

        self.assertEqual(again, services.Joined(members=1, seq=joined.seq))
        presence.reap(now=time.time() + conf_grace() + 1)
        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])
        self.assertEqual(self.in_room(), ["sock.a-reconnected"])

    def test_the_reaper_says_nothing_of_a_room_deleted_meanwhile(self):
        services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        services.socket_leave_all(reply_channel="sock.a")
        services.room_delete(room=self.general)
        self.room_watcher.frames(), self.lobby.frames()

        presence.reap(now=time.time() + conf_grace() + 1)

        self.assertEqual(self.room_watcher.frames(), [])
        self.assertEqual(self.lobby.frames(), [])

    @override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=0)
    def test_with_no_grace_a_disconnect_is_a_leave_at_once(self):
        services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        self.room_watcher.frames(), self.lobby.frames()

        services.socket_leave_all(reply_channel="sock.b")

        self.assertEqual(
            unnumbered(self.room_watcher.frame()),
            {"type": "left", "room": "general", "username": "bob", "members": 1},
        )
        self.assertEqual(self.lobby.frame()["members"], 1)

    def test_lobby_add_and_discard(self):
        socket = StreamClient("/chat/stream/")
        services.lobby_add(reply_channel=socket.reply_channel)
        joined = services.room_join(room=self.general, user=self.alice, reply_channel="sock.a")
        self.assertEqual(socket.frame(), {"type": "presence", "room": "general", "members": 1, "seq": joined.seq})

        services.lobby_discard(reply_channel=socket.reply_channel)
        services.room_leave(room=self.general, reply_channel="sock.a", user=self.alice)
        self.assertEqual(socket.frames(), [])

    # -- messages -------------------------------------------------------------------------

    def test_message_send_saves_and_broadcasts_the_message(self):
        message = services.message_send(room=self.general, user=self.alice, text="  hello  ")

        self.assertEqual(Message.objects.get().text, "hello")
        self.assertEqual(
            self.room_watcher.frame(),
            {
                "type": "message",
                "room": "general",
                "id": message.id,
                "username": "alice",
                "message": "hello",
                "created": message.created.isoformat(),
            },
        )

    def test_a_rolled_back_message_send_broadcasts_nothing(self):
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.message_send(room=self.general, user=self.alice, text="never sent")
                self.assertEqual(self.room_watcher.frames(), [])
                raise Rollback()

        self.assertFalse(Message.objects.exists())
        self.assertEqual(self.room_watcher.frames(), [])

    def test_message_send_refuses_bad_text_with_a_code_and_saves_nothing(self):
        cases = [
            ("", "message-empty"),
            ("  \n\t ", "message-empty"),
            ("x" * (conf.MESSAGE_MAX_LENGTH + 1), "message-too-long"),
            (None, "invalid-message"),
            (42, "invalid-message"),
        ]
        for text, code in cases:
            with self.subTest(code=code, text=str(text)[:10]):
                with self.assertRaises(ClientError) as raised:
                    services.message_send(room=self.general, user=self.alice, text=text)
                self.assertEqual(raised.exception.code, code)
        self.assertFalse(Message.objects.exists())
        self.assertEqual(self.room_watcher.frames(), [])

    def test_a_message_of_exactly_the_maximum_length_is_accepted(self):
        text = "y" * conf.MESSAGE_MAX_LENGTH

        services.message_send(room=self.general, user=self.alice, text=text)

        self.assertEqual(Message.objects.get().text, text)
        self.assertEqual(self.room_watcher.frame()["message"], text)

    def test_room_create(self):
        room = services.room_create(title="Random", slug="random")
        self.assertEqual(Room.objects.get(slug="random"), room)
        self.assertFalse(room.staff_only)
        self.assertEqual(room.group_name, f"chat.room.{room.pk}")
