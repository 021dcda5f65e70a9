"""chat.selectors: who may enter which room, how many people are in it, which messages to replay."""

from django.contrib.auth.models import AnonymousUser, User
from django.test import TestCase

from channels1_kit.websocket import ClientError
from chat import selectors
from chat.models import Message, Presence, Room


class SelectorTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = User.objects.create_user("alice", password="x")
        cls.bob = User.objects.create_user("bob", password="x")
        cls.boss = User.objects.create_user("boss", password="x", is_staff=True)
        cls.general = Room.objects.create(title="General", slug="general")
        cls.staff = Room.objects.create(title="Staff", slug="staff", staff_only=True)

    def assertClientError(self, code, **kwargs):
        with self.assertRaises(ClientError) as raised:
            selectors.room_get_for_user(**kwargs)
        self.assertEqual(raised.exception.code, code)

    def test_room_get_for_user_returns_the_room(self):
        self.assertEqual(selectors.room_get_for_user(slug="general", user=self.alice), self.general)
        self.assertEqual(selectors.room_get_for_user(slug="staff", user=self.boss), self.staff)

    def test_room_get_for_user_refuses_with_a_code_for_each_reason(self):
        self.assertClientError("login-required", slug="general", user=AnonymousUser())
        self.assertClientError("room-forbidden", slug="staff", user=self.alice)
        self.assertClientError("room-not-found", slug="nowhere", user=self.alice)
        for slug in [None, "", 5, ["general"]]:
            with self.subTest(slug=slug):
                self.assertClientError("invalid-room", slug=slug, user=self.alice)

    def test_rooms_visible_to_hides_staff_rooms_from_non_staff(self):
        self.assertEqual(list(selectors.rooms_visible_to(user=self.alice)), [self.general])
        self.assertEqual(list(selectors.rooms_visible_to(user=self.boss)), [self.general, self.staff])

    def test_room_member_count_counts_people_not_sockets(self):
        Presence.objects.create(room=self.general, user=self.alice, reply_channel="daphne.response.a!1")
        Presence.objects.create(room=self.general, user=self.alice, reply_channel="daphne.response.b!2")
        Presence.objects.create(room=self.general, user=self.bob, reply_channel="daphne.response.a!3")
        Presence.objects.create(room=self.staff, user=self.boss, reply_channel="daphne.response.a!4")

        self.assertEqual(selectors.room_member_count(room=self.general), 2)
        self.assertEqual(selectors.room_member_counts(rooms=[self.general, self.staff]), {"general": 2, "staff": 1})

    def test_room_counts_are_the_people_in_the_room_and_one_users_sockets_there(self):
        Presence.objects.create(room=self.general, user=self.alice, reply_channel="daphne.response.a!1")
        Presence.objects.create(room=self.general, user=self.alice, reply_channel="daphne.response.b!2")
        Presence.objects.create(room=self.general, user=self.bob, reply_channel="daphne.response.a!3")
        Presence.objects.create(room=self.staff, user=self.alice, reply_channel="daphne.response.a!4")

        self.assertEqual(selectors.room_counts(room=self.general, user=self.alice), (2, 2))
        self.assertEqual(selectors.room_counts(room=self.general, user=self.bob), (2, 1))
        self.assertEqual(selectors.room_counts(room=self.general, user=self.boss), (2, 0))
        self.assertEqual(selectors.room_counts(room=self.staff, user=self.alice), (1, 1))

    def test_message_history_is_the_newest_messages_oldest_first(self):
        ids = [Message.objects.create(room=self.general, user=self.alice, text=f"m{n}").id for n in range(5)]
        Message.objects.create(room=self.staff, user=self.boss, text="elsewhere")

        self.assertEqual([m.id for m in selectors.message_history(room=self.general, limit=3)], ids[2:])
        self.assertEqual([m.id for m in selectors.message_history(room=self.general)], ids)

    def test_message_list_since_is_what_came_after_oldest_first_and_limited(self):
        ids = [Message.objects.create(room=self.general, user=self.alice, text=f"m{n}").id for n in range(5)]
        Message.objects.create(room=self.staff, user=self.boss, text="elsewhere")

        self.assertEqual([m.id for m in selectors.message_list_since(room=self.general, since_id=ids[1])], ids[2:])
        self.assertEqual([m.id for m in selectors.message_list_since(room=self.general, since_id=0, limit=2)], ids[:2])
        self.assertEqual(selectors.message_list_since(room=self.general, since_id=ids[-1]), [])

    def test_presence_rooms_for_channel_lists_the_rooms_of_one_socket(self):
        Presence.objects.create(room=self.general, user=self.boss, reply_channel="daphne.response.a!1")
        Presence.objects.create(room=self.staff, user=self.boss, reply_channel="daphne.response.a!1")
        Presence.objects.create(room=self.general, user=self.bob, reply_channel="daphne.response.a!2")

        rooms = selectors.presence_rooms_for_channel(reply_channel="daphne.response.a!1")
        self.assertEqual(sorted(room.slug for room in rooms), ["general", "staff"])
        self.assertEqual(selectors.presence_rooms_for_channel(reply_channel="daphne.response.z!9"), [])
