"""chat.consumers through the project routing, as daphne and the workers run them."""

import time
from unittest import mock

from channels.test import TransactionChannelTestCase
from django.contrib.auth.models import User
from django.test import override_settings

from channels1_kit import presence
from chat import conf, consumers, services
from chat.models import Message
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient

STREAM = "/chat/stream/"


def unnumbered(frames: list) -> list:
    """The frames less their presence number ("seq"), which starts from the clock: tests compare
    seqs with each other (and with what presence says now), not with constants."""
    return [{key: value for key, value in frame.items() if key != "seq"} for frame in frames]


# Transaction test case: broadcasts wait for a real commit, which TestCase never makes.
@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class ChatStreamTestCase(TransactionChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="x")
        self.bob = User.objects.create_user("bob", password="x")
        self.boss = User.objects.create_user("boss", password="x", is_staff=True)
        self.general = services.room_create(title="General", slug="general")
        self.random = services.room_create(title="Random", slug="random")
        self.staff = services.room_create(title="Staff", slug="staff", staff_only=True)

    def socket(self, user=None) -> StreamClient:
        client = StreamClient(STREAM)
        if user is not None:
            client.force_login(user)
        client.connect()
        return client

    def joined(self, user, room: str = "general", **extra) -> StreamClient:
        client = self.socket(user)
        client.send_json({"command": "join", "room": room, **extra})
        client.frames()
        return client

    def room_frames(self, client: StreamClient) -> list:
        """What the socket got, less the lobby's presence counts that every logged-in socket gets."""
        return [frame for frame in client.frames() if frame.get("type") != "presence"]

    def in_room(self, room) -> list:
        """The sockets the room's presence counts."""
        return sorted(presence.sockets_in(room.group_name))

    def seq(self, room) -> int:
        """The room's presence number now: the seq of the last change of its people."""
        return presence.state([room.group_name])[room.group_name][1]

    def reap_after_the_grace(self) -> None:
        """What each worker's reaper does once the grace of people who did not come back ran out."""
        presence.reap(now=time.time() + presence.grace_seconds() + 1)

    def reply(self, client: StreamClient, key: str) -> dict:
        """The one frame that has `key`, among what the socket got; fails if there is not exactly one."""
        matching = [frame for frame in client.frames() if key in frame]
        self.assertEqual(len(matching), 1, f"expected one frame with {key!r}, got {matching}")
        return matching[0]


class ConnectTests(ChatStreamTestCase):
    def test_a_logged_in_socket_is_accepted_quietly_and_hears_lobby_counts(self):
        lobby = self.socket(self.alice)
        self.assertEqual(lobby.frames(), [])

        self.joined(self.bob)

        self.assertEqual(
            lobby.frames(), [{"type": "presence", "room": "general", "members": 1, "seq": self.seq(self.general)}]
        )

    def test_lobby_counts_of_staff_rooms_go_nowhere(self):
        lobby = self.socket(self.boss)

        self.joined(self.boss, "staff")

        self.assertEqual(lobby.frames(), [])

    def test_an_anonymous_socket_is_told_to_log_in_and_every_command_is_refused(self):
        anonymous = self.socket()
        self.assertEqual(anonymous.frame()["error"], "login-required")

        anonymous.send_json({"command": "join", "room": "general"})
        self.assertEqual(anonymous.frame()["error"], "login-required")
        anonymous.send_json({"command": "send", "room": "general", "message": "hi"})
        self.assertEqual(anonymous.frame()["error"], "login-required")
        self.assertEqual(presence.all_sockets(), [])
        self.assertFalse(Message.objects.exists())

    def test_an_anonymous_socket_gets_no_lobby_counts(self):
        anonymous = self.socket()
        anonymous.frames()

        self.joined(self.bob)

        self.assertEqual(anonymous.frames(), [])


class JoinTests(ChatStreamTestCase):
    def test_join_replies_with_the_room_its_members_and_recent_history(self):
        sent = [services.message_send(room=self.general, user=self.bob, text=f"m{n}") for n in range(3)]
        services.message_send(room=self.random, user=self.bob, text="elsewhere")
        client = self.socket(self.alice)

        client.send_json({"command": "join", "room": "general"})

        reply = self.reply(client, "join")
        self.assertEqual(reply["join"], "general")
        self.assertEqual(reply["title"], "General")
        self.assertEqual(reply["members"], 1)
        self.assertEqual(reply["seq"], self.seq(self.general))
        self.assertEqual([m["id"] for m in reply["messages"]], [m.id for m in sent])
        self.assertEqual(
            reply["messages"][0],
            {
                "type": "message",
                "room": "general",
                "id": sent[0].id,
                "username": "bob",
                "message": "m0",
                "created": sent[0].created.isoformat(),
            },
        )
        self.assertEqual(self.in_room(self.general), [client.reply_channel])

    def test_join_history_is_the_newest_messages_only(self):
        ids = [
            services.message_send(room=self.general, user=self.bob, text=f"m{n}").id
            for n in range(conf.HISTORY_LENGTH + 5)
        ]
        client = self.socket(self.alice)

        client.send_json({"command": "join", "room": "general"})

        self.assertEqual([m["id"] for m in self.reply(client, "join")["messages"]], ids[-conf.HISTORY_LENGTH :])

    def test_join_with_since_returns_only_what_came_after(self):
        ids = [services.message_send(room=self.general, user=self.bob, text=f"m{n}").id for n in range(5)]
        client = self.socket(self.alice)

        client.send_json({"command": "join", "room": "general", "since": ids[1]})

        self.assertEqual([m["id"] for m in self.reply(client, "join")["messages"]], ids[2:])

    def test_join_with_since_of_the_newest_message_returns_nothing(self):
        last = services.message_send(room=self.general, user=self.bob, text="seen")
        client = self.socket(self.alice)

        client.send_json({"command": "join", "room": "general", "since": last.id})

        self.assertEqual(self.reply(client, "join")["messages"], [])

    def test_members_hear_who_joined_and_left_with_the_count(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        joined = self.seq(self.general)
        self.assertEqual(
            alice.frames(),
            [
                {"type": "joined", "room": "general", "username": "bob", "members": 2, "seq": joined},
                {"type": "presence", "room": "general", "members": 2, "seq": joined},
            ],
        )

        bob.send_json({"command": "leave", "room": "general"})

        self.assertEqual(self.room_frames(bob), [{"leave": "general"}])
        left = self.seq(self.general)
        self.assertGreater(left, joined)
        self.assertEqual(
            alice.frames(),
            [
                {"type": "left", "room": "general", "username": "bob", "members": 1, "seq": left},
                {"type": "presence", "room": "general", "members": 1, "seq": left},
            ],
        )
        self.assertEqual(self.in_room(self.general), [alice.reply_channel])

    def test_two_sockets_of_one_user_count_once(self):
        first = self.joined(self.alice)
        bob = self.joined(self.bob)
        first.frames()

        second = self.socket(self.alice)
        second.send_json({"command": "join", "room": "general"})

        self.assertEqual(self.reply(second, "join")["members"], 2)
        self.assertEqual(
            self.in_room(self.general), sorted([first.reply_channel, second.reply_channel, bob.reply_channel])
        )
        self.assertEqual(bob.frames(), [])

        first.disconnect()
        self.reap_after_the_grace()
        self.assertEqual(bob.frames(), [])
        second.send_json({"command": "leave", "room": "general"})
        self.assertEqual(
            unnumbered(bob.frames()),
            [
                {"type": "left", "room": "general", "username": "alice", "members": 1},
                {"type": "presence", "room": "general", "members": 1},
            ],
        )

    def test_staff_may_join_the_staff_room(self):
        client = self.socket(self.boss)

        client.send_json({"command": "join", "room": "staff"})

        self.assertEqual(self.reply(client, "join")["join"], "staff")


class JoinQueryTests(ChatStreamTestCase):
    """A crowd's first joins skip the check of the socket's other rooms: there are none."""

    def test_a_first_join_checks_no_other_room_and_a_second_checks_the_first(self):
        client = self.socket(self.alice)
        with mock.patch.object(
            consumers.selectors, "rooms_existing", wraps=consumers.selectors.rooms_existing
        ) as check:
            client.send_json({"command": "join", "room": "general"})
            client.frames()
            self.assertEqual(check.call_count, 0)
            client.send_json({"command": "join", "room": "random"})
            client.frames()
            self.assertEqual([call.kwargs for call in check.call_args_list], [{"pks": [self.general.pk]}])
        client.send_json({"command": "send", "room": "general", "message": "still in general"})
        self.assertIn("still in general", [frame.get("message") for frame in client.frames()])


class MessageTests(ChatStreamTestCase):
    def test_a_message_reaches_every_member_including_the_sender(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        outsider = self.joined(self.boss, "random")
        alice.frames()

        alice.send_json({"command": "send", "room": "general", "message": "hello bob"})

        stored = Message.objects.get()
        self.assertEqual((stored.room, stored.user, stored.text), (self.general, self.alice, "hello bob"))
        expected = {
            "type": "message",
            "room": "general",
            "id": stored.id,
            "username": "alice",
            "message": "hello bob",
            "created": stored.created.isoformat(),
        }
        self.assertEqual(self.room_frames(alice), [expected])
        self.assertEqual(self.room_frames(bob), [expected])
        self.assertEqual(self.room_frames(outsider), [])

    def test_history_returns_the_messages_after_since(self):
        alice = self.joined(self.alice)
        ids = [services.message_send(room=self.general, user=self.bob, text=f"m{n}").id for n in range(4)]
        alice.frames()

        alice.send_json({"command": "history", "room": "general", "since": ids[1]})

        reply = self.reply(alice, "history")
        self.assertEqual(reply["history"], "general")
        self.assertEqual([m["id"] for m in reply["messages"]], ids[2:])

    def test_after_leaving_no_more_messages_arrive(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        alice.send_json({"command": "leave", "room": "general"})
        alice.frames()

        bob.send_json({"command": "send", "room": "general", "message": "gone?"})

        self.assertEqual(alice.frames(), [])

    def test_after_leaving_sending_is_refused(self):
        alice = self.joined(self.alice)
        alice.send_json({"command": "leave", "room": "general"})
        alice.frames()

        alice.send_json({"command": "send", "room": "general", "message": "hi"})

        self.assertEqual(alice.frame()["error"], "not-in-room")
        self.assertFalse(Message.objects.exists())


class DisconnectTests(ChatStreamTestCase):
    def test_disconnect_leaves_every_room_and_the_lobby(self):
        alice = self.joined(self.alice, "general")
        alice.send_json({"command": "join", "room": "random"})
        bob = self.joined(self.bob, "general")
        alice.frames()

        alice.disconnect()

        self.assertEqual(self.in_room(self.general), [bob.reply_channel])
        self.assertEqual(self.in_room(self.random), [])
        # Out of the lobby too: counts no longer reach the closed socket.
        self.joined(self.boss, "random")
        self.assertEqual(alice.frames(), [])

    def test_a_person_who_does_not_come_back_is_told_gone_once_the_grace_ran_out(self):
        alice = self.joined(self.alice, "general")
        alice.send_json({"command": "join", "room": "random"})
        bob = self.joined(self.bob, "general")
        bob.frames()

        alice.disconnect()

        # A page that reconnects within the grace (a deploy, a network blip) is no leave.
        self.assertEqual(bob.frames(), [])
        self.assertEqual(presence.members(self.general.group_name), 2)

        self.reap_after_the_grace()

        frames = bob.frames()
        general, random = self.seq(self.general), self.seq(self.random)
        self.assertIn({"type": "left", "room": "general", "username": "alice", "members": 1, "seq": general}, frames)
        self.assertIn({"type": "presence", "room": "general", "members": 1, "seq": general}, frames)
        self.assertIn({"type": "presence", "room": "random", "members": 0, "seq": random}, frames)
        self.assertEqual(len(frames), 3, frames)

    def test_a_page_that_reconnects_within_the_grace_neither_left_nor_joined(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        before = self.seq(self.general)
        bob.frames()

        alice.disconnect()
        again = self.socket(self.alice)
        again.send_json({"command": "join", "room": "general"})

        reply = self.reply(again, "join")
        self.assertEqual((reply["members"], reply["seq"]), (2, before))
        self.reap_after_the_grace()
        self.assertEqual(bob.frames(), [])
        self.assertEqual(self.in_room(self.general), sorted([again.reply_channel, bob.reply_channel]))

    @override_settings(CHANNELS1_KIT_PRESENCE_GRACE_SECONDS=0)
    def test_with_no_grace_a_disconnect_is_a_leave_at_once(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        bob.frames()

        alice.disconnect()

        self.assertEqual(
            unnumbered(bob.frames()),
            [
                {"type": "left", "room": "general", "username": "alice", "members": 1},
                {"type": "presence", "room": "general", "members": 1},
            ],
        )

    def test_a_closed_socket_is_in_no_group_any_more(self):
        alice = self.joined(self.alice)
        alice.disconnect()
        alice.frames()

        bob = self.joined(self.bob)
        bob.send_json({"command": "send", "room": "general", "message": "hi"})

        self.assertEqual(alice.frames(), [])
        self.assertEqual(self.in_room(self.general), [bob.reply_channel])


class ClientErrorTests(ChatStreamTestCase):
    """Each refusal has its own code, and the socket still works after it."""

    def assertRefusedThenStillWorks(self, client: StreamClient, code: str):
        self.assertEqual(client.frame()["error"], code)
        client.send_json({"command": "join", "room": "random"})
        self.assertEqual(self.reply(client, "join")["join"], "random")
        client.send_json({"command": "send", "room": "random", "message": "still here"})
        self.assertEqual(client.frame()["message"], "still here")

    def test_staff_only_room_for_non_staff(self):
        client = self.socket(self.alice)
        client.send_json({"command": "join", "room": "staff"})
        self.assertRefusedThenStillWorks(client, "room-forbidden")
        self.assertEqual(self.in_room(self.staff), [])

    def test_unknown_room(self):
        client = self.socket(self.alice)
        client.send_json({"command": "join", "room": "nowhere"})
        self.assertRefusedThenStillWorks(client, "room-not-found")

    def test_missing_room(self):
        client = self.socket(self.alice)
        client.send_json({"command": "join"})
        self.assertRefusedThenStillWorks(client, "invalid-room")

    def test_invalid_json(self):
        client = self.socket(self.alice)
        client.send_text('{"command": "join", ')
        self.assertRefusedThenStillWorks(client, "invalid-json")

    def test_json_that_is_not_an_object(self):
        client = self.socket(self.alice)
        client.send_json(["join", "general"])
        self.assertRefusedThenStillWorks(client, "invalid-frame")

    def test_binary_frame(self):
        client = self.socket(self.alice)
        client.send_bytes(b'{"command": "join", "room": "general"}')
        self.assertRefusedThenStillWorks(client, "binary-frame")

    def test_unknown_command(self):
        client = self.socket(self.alice)
        client.send_json({"command": "shout", "room": "general"})
        self.assertRefusedThenStillWorks(client, "unknown-command")

    def test_missing_command(self):
        client = self.socket(self.alice)
        client.send_json({"room": "general"})
        self.assertRefusedThenStillWorks(client, "invalid-command")

    def test_command_that_is_not_a_string(self):
        client = self.socket(self.alice)
        client.send_json({"command": ["join"], "room": "general"})
        self.assertRefusedThenStillWorks(client, "invalid-command")

    def test_empty_message(self):
        client = self.joined(self.alice)
        client.send_json({"command": "send", "room": "general", "message": "   "})
        self.assertRefusedThenStillWorks(client, "message-empty")
        self.assertEqual(list(Message.objects.values_list("text", flat=True)), ["still here"])

    def test_message_that_is_not_a_string(self):
        client = self.joined(self.alice)
        client.send_json({"command": "send", "room": "general", "message": {"text": "hi"}})
        self.assertRefusedThenStillWorks(client, "invalid-message")

    def test_over_long_message(self):
        client = self.joined(self.alice)
        client.send_json({"command": "send", "room": "general", "message": "x" * (conf.MESSAGE_MAX_LENGTH + 1)})
        self.assertRefusedThenStillWorks(client, "message-too-long")
        self.assertEqual(list(Message.objects.values_list("text", flat=True)), ["still here"])

    def test_send_to_a_room_not_joined(self):
        client = self.socket(self.alice)
        client.send_json({"command": "send", "room": "general", "message": "hi"})
        self.assertRefusedThenStillWorks(client, "not-in-room")
        self.assertFalse(Message.objects.filter(room=self.general).exists())

    def test_leave_a_room_not_joined(self):
        client = self.socket(self.alice)
        client.send_json({"command": "leave", "room": "general"})
        self.assertRefusedThenStillWorks(client, "not-in-room")

    def test_history_of_a_room_not_joined(self):
        client = self.socket(self.alice)
        client.send_json({"command": "history", "room": "general", "since": 0})
        self.assertRefusedThenStillWorks(client, "not-in-room")

    def test_invalid_since_on_join(self):
        for since in [-1, "3", 1.5, True]:
            with self.subTest(since=since):
                client = self.socket(self.alice)
                client.send_json({"command": "join", "room": "general", "since": since})
                self.assertRefusedThenStillWorks(client, "invalid-since")
                self.assertNotIn(client.reply_channel, self.in_room(self.general))

    def test_invalid_since_on_history(self):
        client = self.joined(self.alice)
        client.send_json({"command": "history", "room": "general", "since": "yesterday"})
        self.assertRefusedThenStillWorks(client, "invalid-since")

    def test_anonymous_user(self):
        anonymous = self.socket()
        anonymous.send_json({"command": "join", "room": "general"})
        self.assertEqual([f["error"] for f in anonymous.frames()], ["login-required", "login-required"])
