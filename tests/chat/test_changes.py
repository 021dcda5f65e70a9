"""Issue 12 for the chat: groups named by primary key (a renamed room keeps its sockets), rooms
deleted through the services (members and lobby told), presence frames numbered per room (seq)."""

from channels import Group
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, RequestFactory

from channels1_kit import sockets
from channels1_kit.websocket import ClientError
from chat import selectors, services
from chat.admin import PresenceAdmin
from chat.models import LOBBY_GROUP, Message, Presence, Room
from tests.chat.test_consumers import ChatStreamTestCase
from tests.support.channel_tests import StreamClient

STREAM = "/chat/stream/"


class Rollback(Exception):
    pass


def listener(*groups: str) -> StreamClient:
    client = StreamClient(STREAM)
    for group in groups:
        client.join_group(group)
    return client


class ChangesTestCase(ChatStreamTestCase):
    """The chat's users and rooms (ChatStreamTestCase); a join here must be answered."""

    def joined(self, user, room: str = "general") -> StreamClient:
        client = self.socket(user)
        client.send_json({"command": "join", "room": room})
        replies = [f for f in client.frames() if "join" in f or "error" in f]
        self.assertEqual([f.get("join") for f in replies], [room], replies)
        return client

    def rename(self, room: Room, slug: str) -> None:
        room.slug = slug
        room.save()

    def messages(self, client: StreamClient) -> list:
        return [(f["room"], f["message"]) for f in client.frames() if f.get("type") == "message"]

    def errors(self, client: StreamClient) -> list:
        return [f["error"] for f in client.frames() if "error" in f]


# -- 1. group names from primary keys ---------------------------------------------------------


class GroupNameTests(ChangesTestCase):
    def test_the_group_is_named_by_primary_key_and_survives_a_rename(self):
        group = self.general.group_name
        self.assertEqual(group, f"chat.room.{self.general.pk}")
        self.rename(self.general, "lounge")
        self.assertEqual(Room.objects.get(pk=self.general.pk).group_name, group)

    def test_a_renamed_room_keeps_its_sockets_and_they_send_and_leave_under_the_new_slug(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        alice.frames()

        self.rename(self.general, "lounge")
        alice.send_json({"command": "send", "room": "lounge", "message": "renamed?"})

        self.assertEqual(self.messages(bob), [("lounge", "renamed?")])
        self.assertEqual(self.messages(alice), [("lounge", "renamed?")])
        # The old slug is no room any more.
        alice.send_json({"command": "send", "room": "general", "message": "old name"})
        self.assertEqual(self.errors(alice), ["room-not-found"])

        bob.send_json({"command": "leave", "room": "lounge"})
        self.assertIn({"leave": "lounge"}, bob.frames())
        left = [f for f in alice.frames() if f.get("type") == "left"]
        self.assertEqual([(f["room"], f["username"], f["members"]) for f in left], [("lounge", "bob", 1)])
        self.assertEqual(list(Presence.objects.values_list("user__username", flat=True)), ["alice"])

    def test_the_channel_session_lists_rooms_by_primary_key(self):
        alice = self.joined(self.alice)
        alice.send_json({"command": "join", "room": "random"})
        alice.frames()
        self.assertEqual(self._session(alice)["rooms"], [self.general.pk, self.random.pk])

    def _session(self, client: StreamClient) -> dict:
        from channels.sessions import session_for_reply_channel

        return dict(session_for_reply_channel(client.reply_channel).load())

    def test_a_session_from_before_that_lists_slugs_joins_again(self):
        from channels.sessions import session_for_reply_channel

        alice = self.joined(self.alice)
        session = session_for_reply_channel(alice.reply_channel)
        session.update({"rooms": ["general"]})
        session.save()

        alice.send_json({"command": "send", "room": "general", "message": "hi"})
        self.assertEqual(self.errors(alice), ["not-in-room"])
        alice.send_json({"command": "join", "room": "general"})
        alice.frames()
        self.assertEqual(self._session(alice)["rooms"], [self.general.pk])

    def test_legacy_group_names_are_the_slug_names_less_the_lobby(self):
        services.room_create(title="Lobby", slug="lobby")
        self.assertEqual(sorted(selectors.legacy_group_names()), ["chat.general", "chat.random", "chat.staff"])
        self.assertNotIn(LOBBY_GROUP, selectors.legacy_group_names())

    def test_socket_group_names_are_the_lobby_and_the_pk_names(self):
        self.assertEqual(
            selectors.socket_group_names(),
            [LOBBY_GROUP, *(f"chat.room.{room.pk}" for room in Room.objects.all())],
        )

    def test_the_app_registers_its_legacy_group_names_with_the_kit(self):
        (chat,) = [app for app in sockets.registered() if app.label == "chat"]
        self.assertIs(chat.legacy_groups, selectors.legacy_group_names)
        self.assertIs(chat.groups, selectors.socket_group_names)


# -- 2. deleting rooms through the services -------------------------------------------------


class RoomDeleteTests(ChangesTestCase):
    def test_members_are_told_taken_out_of_the_group_and_the_lobby_hears(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        lobby = listener(LOBBY_GROUP)
        Message.objects.create(room=self.general, user=self.alice, text="kept?")
        group = self.general.group_name
        alice.frames(), bob.frames()

        services.room_delete(room=self.general)

        notice = {"type": "room.deleted", "room": "general", "message": "This room was deleted."}
        for member in (alice, bob):
            frames = member.frames()
            self.assertIn(notice, frames)
            # And the lobby's, since every logged-in socket is in the lobby.
            self.assertIn({"type": "room.deleted", "room": "general"}, frames)
        self.assertEqual(lobby.frames(), [{"type": "room.deleted", "room": "general"}])
        self.assertFalse(Room.objects.filter(slug="general").exists())
        self.assertFalse(Presence.objects.filter(reply_channel__in=[alice.reply_channel, bob.reply_channel]).exists())
        self.assertFalse(Message.objects.exists())
        # Out of the group: nothing sent to it reaches them.
        Group(group).send({"text": '{"late": true}'}, immediately=True)
        self.assertEqual(alice.frames(), [])
        self.assertEqual(bob.frames(), [])

    def test_a_staff_only_room_is_not_announced_to_the_lobby(self):
        boss = self.joined(self.boss, "staff")
        lobby = listener(LOBBY_GROUP)

        services.room_delete(room=self.staff)

        self.assertEqual(
            boss.frames(), [{"type": "room.deleted", "room": "staff", "message": "This room was deleted."}]
        )
        self.assertEqual(lobby.frames(), [])

    def test_nothing_is_sent_before_the_commit_nor_after_a_rollback(self):
        alice = self.joined(self.alice)
        alice.frames()
        pk = self.general.pk
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.room_delete(room=self.general)
                self.assertEqual(alice.frames(), [])
                raise Rollback()

        self.assertTrue(Room.objects.filter(pk=pk).exists())
        self.assertEqual(alice.frames(), [])
        alice.send_json({"command": "send", "room": "general", "message": "still here"})
        self.assertEqual(self.messages(alice), [("general", "still here")])

    def test_a_socket_whose_room_was_deleted_goes_on(self):
        alice = self.joined(self.alice)
        alice.send_json({"command": "join", "room": "random"})
        services.room_delete(room=self.general)
        alice.frames()

        alice.send_json({"command": "send", "room": "general", "message": "anyone?"})
        self.assertEqual(self.errors(alice), ["room-not-found"])
        alice.send_json({"command": "leave", "room": "general"})
        self.assertEqual(self.errors(alice), ["room-not-found"])
        alice.send_json({"command": "send", "room": "random", "message": "elsewhere"})
        self.assertEqual(self.messages(alice), [("random", "elsewhere")])
        # The deleted room's pk is dropped from the session on the next join or leave.
        alice.send_json({"command": "leave", "room": "random"})
        alice.frames()
        from channels.sessions import session_for_reply_channel

        self.assertEqual(session_for_reply_channel(alice.reply_channel).load()["rooms"], [])
        alice.disconnect()
        self.assertFalse(Presence.objects.exists())

    def test_a_room_recreated_under_the_same_slug_is_not_joined(self):
        alice = self.joined(self.alice)
        services.room_delete(room=self.general)
        services.room_create(title="General again", slug="general")
        alice.frames()

        alice.send_json({"command": "send", "room": "general", "message": "hi"})
        self.assertEqual(self.errors(alice), ["not-in-room"])

    def test_a_join_of_a_room_deleted_meanwhile_is_refused(self):
        stale = Room.objects.get(pk=self.general.pk)
        services.room_delete(room=self.general)

        with self.assertRaises(ClientError) as raised:
            services.room_join(room=stale, user=self.alice, reply_channel="sock.a")
        self.assertEqual(raised.exception.code, "room-not-found")
        self.assertFalse(Presence.objects.exists())

    def test_deleting_a_room_twice_sends_nothing_the_second_time(self):
        stale = Room.objects.get(pk=self.general.pk)
        services.room_delete(room=self.general)
        lobby = listener(LOBBY_GROUP)

        services.room_delete(room=stale)

        self.assertEqual(lobby.frames(), [])


class AdminTests(ChangesTestCase):
    def setUp(self):
        super().setUp()
        self.superuser = User.objects.create_superuser("admin", "admin@example.com", "admin")
        self.admin = Client()
        self.admin.login(username="admin", password="admin")

    def test_deleting_a_room_in_the_admin_tells_its_members_and_the_lobby(self):
        alice = self.joined(self.alice)
        alice.frames()

        response = self.admin.post(f"/admin/chat/room/{self.general.pk}/delete/", {"post": "yes"})

        self.assertEqual(response.status_code, 302)
        self.assertFalse(Room.objects.filter(slug="general").exists())
        frames = alice.frames()
        self.assertIn({"type": "room.deleted", "room": "general", "message": "This room was deleted."}, frames)
        self.assertIn({"type": "room.deleted", "room": "general"}, frames)

    def test_deleting_rooms_from_the_list_goes_through_the_service_for_each(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob, "random")
        alice.frames(), bob.frames()

        response = self.admin.post(
            "/admin/chat/room/",
            {"action": "delete_selected", "_selected_action": [self.general.pk, self.random.pk], "post": "yes"},
        )

        self.assertEqual(response.status_code, 302)
        self.assertEqual(list(Room.objects.values_list("slug", flat=True)), ["staff"])
        self.assertIn({"type": "room.deleted", "room": "general", "message": "This room was deleted."}, alice.frames())
        self.assertIn({"type": "room.deleted", "room": "random", "message": "This room was deleted."}, bob.frames())

    def test_renaming_a_room_in_the_admin_keeps_its_sockets(self):
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        alice.frames()

        response = self.admin.post(
            f"/admin/chat/room/{self.general.pk}/change/", {"title": "Lounge", "slug": "lounge", "staff_only": ""}
        )
        self.assertEqual(response.status_code, 302, response.content[:500])
        # Every chat page hears of it through the lobby, so it can show and address the room anew.
        renamed = {"type": "room.renamed", "room": "general", "slug": "lounge", "title": "Lounge"}
        self.assertIn(renamed, bob.frames())
        alice.send_json({"command": "send", "room": "lounge", "message": "new name"})

        self.assertEqual(self.messages(bob), [("lounge", "new name")])

    def test_renaming_a_staff_only_room_tells_its_members_not_the_lobby(self):
        boss = self.joined(self.boss, "staff")
        alice = self.socket(self.alice)
        boss.frames(), alice.frames()

        services.room_update(room=self.staff, title="Staff room", slug="staff-room", staff_only=True)

        renamed = {"type": "room.renamed", "room": "staff", "slug": "staff-room", "title": "Staff room"}
        self.assertIn(renamed, boss.frames())
        self.assertEqual([f for f in alice.frames() if f.get("type") == "room.renamed"], [])

    def test_presences_are_read_only_in_the_admin(self):
        Presence.objects.create(room=self.general, user=self.alice, reply_channel="sock.a")
        presence = Presence.objects.get()
        model_admin = PresenceAdmin(Presence, admin_site)
        request = RequestFactory().get("/admin/chat/presence/")
        request.user = self.superuser
        self.assertFalse(model_admin.has_add_permission(request))
        self.assertFalse(model_admin.has_change_permission(request, presence))
        self.assertFalse(model_admin.has_delete_permission(request, presence))
        self.assertNotIn("delete_selected", model_admin.get_actions(request))

        listing = self.admin.get("/admin/chat/presence/")
        self.assertEqual(listing.status_code, 200)
        self.assertContains(listing, "sock.a")
        self.assertNotContains(listing, f"/admin/chat/presence/{presence.pk}/change/")
        self.assertEqual(self.admin.get("/admin/chat/presence/add/").status_code, 403)
        self.assertEqual(
            self.admin.post(f"/admin/chat/presence/{presence.pk}/delete/", {"post": "yes"}).status_code, 403
        )
        self.assertTrue(Presence.objects.exists())


# -- 3. presence seq ---------------------------------------------------------------------------


class PresenceSeqTests(ChangesTestCase):
    def seq(self, room: Room) -> int:
        return Room.objects.get(pk=room.pk).presence_seq

    def test_a_new_room_starts_at_zero_and_each_join_and_leave_bumps_it(self):
        self.assertEqual(self.seq(self.general), 0)
        self.assertEqual(services.room_join(room=self.general, user=self.alice, reply_channel="a").seq, 1)
        # Also a change nobody hears of (a second tab): the seq only has to grow.
        self.assertEqual(services.room_join(room=self.general, user=self.alice, reply_channel="b").seq, 2)
        services.room_leave(room=self.general, reply_channel="a")
        self.assertEqual(self.seq(self.general), 3)
        self.assertEqual(self.seq(self.random), 0)

    def test_a_rolled_back_join_does_not_bump_it(self):
        with self.assertRaises(Rollback):
            with transaction.atomic():
                services.room_join(room=self.general, user=self.alice, reply_channel="a")
                raise Rollback()
        self.assertEqual(self.seq(self.general), 0)

    def test_lock_room_is_still_the_first_statement_and_an_update(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            services.room_join(room=self.general, user=self.alice, reply_channel="a")
        statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "BEGIN"))]
        self.assertTrue(statements[0].startswith("UPDATE"), statements[0])
        self.assertIn("presence_seq", statements[0])

    def test_every_presence_frame_carries_the_seq_of_its_change_in_order(self):
        room_watcher = listener(self.general.group_name)
        lobby = listener(LOBBY_GROUP)
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        boss = self.joined(self.boss)
        bob.send_json({"command": "leave", "room": "general"})
        boss.disconnect()
        alice.send_json({"command": "leave", "room": "general"})

        notices = [(f["type"], f["members"], f["seq"]) for f in room_watcher.frames()]
        self.assertEqual(
            notices,
            [("joined", 1, 1), ("joined", 2, 2), ("joined", 3, 3), ("left", 2, 4), ("left", 1, 5), ("left", 0, 6)],
        )
        self.assertEqual([(f["members"], f["seq"]) for f in lobby.frames()], [(m, s) for _, m, s in notices])

    def test_the_join_reply_carries_the_seq(self):
        services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        alice = self.socket(self.alice)
        alice.send_json({"command": "join", "room": "general"})
        (reply,) = [f for f in alice.frames() if "join" in f]
        self.assertEqual((reply["members"], reply["seq"]), (2, 2))

    def test_the_page_renders_each_rooms_seq(self):
        services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        page = Client()
        page.force_login(self.alice)
        response = page.get("/chat/")
        self.assertContains(response, 'data-room="general" data-seq="1"')
        self.assertContains(response, 'data-room="random" data-seq="0"')
