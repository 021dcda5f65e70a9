"""chat.selectors: who may enter which room, how many people are in it, which messages to replay."""

from django.contrib.auth.models import AnonymousUser, User
from django.test import TestCase, override_settings

from channels1_kit import presence
from channels1_kit.websocket import ClientError
from chat import selectors
from chat.models import LOBBY_GROUP, Message, Room
from tests.support.channel_tests import IN_MEMORY_LAYERS


# Presence in the process (the in-memory layer has no Redis), fresh for each test (tests/conftest.py).
@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
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

    def join(self, room: Room, user: User, socket: str) -> presence.Change:
        return presence.join(room.group_name, socket=socket, user=str(user.pk))

    def test_room_member_count_counts_people_not_sockets(self):
        self.join(self.general, self.alice, "daphne.response.a!1")
        self.join(self.general, self.alice, "daphne.response.b!2")
        self.join(self.general, self.bob, "daphne.response.a!3")
        self.join(self.staff, self.boss, "daphne.response.a!4")

        self.assertEqual(selectors.room_member_count(room=self.general), 2)
        self.assertEqual(selectors.room_member_count(room=self.staff), 1)

    def test_room_member_counts_are_each_rooms_people_and_presence_number_by_slug(self):
        self.join(self.general, self.alice, "daphne.response.a!1")
        last = self.join(self.general, self.bob, "daphne.response.a!2")
        staff = self.join(self.staff, self.boss, "daphne.response.a!3")
        empty = Room.objects.create(title="Empty", slug="empty")

        counts = selectors.room_member_counts(rooms=[self.general, self.staff, empty])

        self.assertEqual(
            counts,
            {
                "general": selectors.RoomCount(members=2, seq=last.seq),
                "staff": selectors.RoomCount(members=1, seq=staff.seq),
                # No one ever joined: any frame about it is newer than what the page shows.
                "empty": selectors.RoomCount(members=0, seq=0),
            },
        )

    def test_room_for_group_is_the_room_of_a_rooms_group_while_it_exists(self):
        self.assertEqual(selectors.room_for_group(group=self.general.group_name), self.general)
        gone = Room.objects.create(title="Gone", slug="gone")
        group = gone.group_name
        gone.delete()
        for other in (group, LOBBY_GROUP, "chat.room.", "chat.room.x1", "liveblog.1"):
            with self.subTest(group=other):
                self.assertIsNone(selectors.room_for_group(group=other))

    def test_room_group_names_are_the_groups_of_the_rooms_that_exist(self):
        self.assertEqual(sorted(selectors.room_group_names()), sorted([self.general.group_name, self.staff.group_name]))

    def test_username_of_a_users_key_or_nothing_for_one_deleted(self):
        self.assertEqual(selectors.username_of(user_pk=str(self.bob.pk)), "bob")
        self.assertEqual(selectors.username_of(user_pk="999999"), "")

    def test_message_history_is_the_newest_messages_oldest_first(self):
        ids = [Message.objects.create(room=self.general, user=self.alice, text=f"m{n}").id for n in range(5)]
        Message.objects.create(room=self.staff, user=self.boss, text="elsewhere")

        self.assertEqual([m.id for m in selectors.message_history(room=self.general, limit=3)], ids[2:])
        self.assertEqual([m.id for m in selectors.message_history(room=self.general)], ids)

    def test_a_room_read_by_slug_is_the_stored_room_with_every_field(self):
        room = selectors.room_get_for_user(slug="staff", user=self.boss)
        self.assertEqual((room.pk, room.title, room.slug, room.staff_only), (self.staff.pk, "Staff", "staff", True))
        self.assertIs(room.staff_only, True)
        self.assertFalse(room._state.adding)

    def test_room_exists_until_deleted(self):
        room = Room.objects.create(title="Brief", slug="brief")
        pk = room.pk
        self.assertTrue(selectors.room_exists(pk=pk))
        room.delete()
        self.assertFalse(selectors.room_exists(pk=pk))

    def test_messages_read_as_the_orm_reads_them(self):
        stored = Message.objects.create(room=self.general, user=self.bob, text="hello")
        stored.refresh_from_db()
        for view in (
            selectors.message_history(room=self.general)[-1],
            selectors.message_list_since(room=self.general, since_id=0)[-1],
        ):
            self.assertEqual(view, (stored.id, "hello", stored.created, "bob"))
            self.assertEqual(view.created.isoformat(), stored.created.isoformat())

    def test_message_list_since_is_what_came_after_oldest_first_and_limited(self):
        ids = [Message.objects.create(room=self.general, user=self.alice, text=f"m{n}").id for n in range(5)]
        Message.objects.create(room=self.staff, user=self.boss, text="elsewhere")

        self.assertEqual([m.id for m in selectors.message_list_since(room=self.general, since_id=ids[1])], ids[2:])
        self.assertEqual([m.id for m in selectors.message_list_since(room=self.general, since_id=0, limit=2)], ids[:2])
        self.assertEqual(selectors.message_list_since(room=self.general, since_id=ids[-1]), [])
