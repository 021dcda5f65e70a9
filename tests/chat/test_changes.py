"""Issue 12 for the chat: groups named by primary key (a renamed room keeps its sockets), rooms
deleted through the services (members and lobby told), presence frames numbered per room (seq)."""

import time

from channels import Group
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from channels1_kit import presence, sockets
from channels1_kit.websocket import ClientError
from chat import selectors, services
from chat.models import LOBBY_GROUP, Message, Room
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
        self.assertEqual(presence.sockets_in(self.general.group_name), [alice.reply_channel])

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
        # Its presence is forgotten: no one counted, nothing left for the sweep.
        self.assertEqual(presence.sockets_in(group), [])
        self.assertEqual(presence.members(group), 0)
        self.assertEqual(presence.all_sockets(), [])
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
        self.assertEqual(presence.all_sockets(), [])

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
        self.assertEqual(presence.all_sockets(), [])
        self.assertEqual(presence.members(stale.group_name), 0)

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
        self.assertEqual(presence.all_sockets(), [])

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

    def test_the_admin_has_no_presence_page(self):
        # Who is in a room is the sockets' own state in Redis, not data to edit.
        self.joined(self.alice)
        index = self.admin.get("/admin/chat/")
        self.assertEqual(index.status_code, 200)
        self.assertNotContains(index, "/admin/chat/presence/")
        self.assertEqual(self.admin.get("/admin/chat/presence/").status_code, 404)

    def test_a_room_with_people_in_it_is_deleted_from_the_admin_like_any_other(self):
        self.joined(self.alice)
        url = f"/admin/chat/room/{self.general.pk}/delete/"

        confirmation = self.admin.get(url)

        # Nothing the admin would refuse to delete with the room (as read-only rows were).
        self.assertEqual(confirmation.status_code, 200)
        self.assertNotContains(confirmation, "would require deleting the following protected")
        self.assertNotContains(confirmation, "your account doesn't have permission")
        self.assertEqual(self.admin.post(url, {"post": "yes"}).status_code, 302)
        self.assertFalse(Room.objects.filter(pk=self.general.pk).exists())


# -- 3. presence seq ---------------------------------------------------------------------------


class PresenceSeqTests(ChangesTestCase):
    def seq(self, room: Room) -> int:
        """The room's presence number now, as the lobby page is rendered with it."""
        return selectors.room_member_counts(rooms=[room])[room.slug].seq

    def test_a_room_no_one_joined_has_none_and_each_change_of_the_people_raises_it(self):
        self.assertEqual(self.seq(self.general), 0)
        first = services.room_join(room=self.general, user=self.alice, reply_channel="a")
        self.assertGreater(first.seq, 0)
        # A change nobody hears of (a second tab) is no newer count: the number stays.
        self.assertEqual(services.room_join(room=self.general, user=self.alice, reply_channel="b").seq, first.seq)
        bob = services.room_join(room=self.general, user=self.bob, reply_channel="c")
        self.assertGreater(bob.seq, first.seq)
        services.room_leave(room=self.general, reply_channel="c", user=self.bob)
        self.assertGreater(self.seq(self.general), bob.seq)
        self.assertEqual(self.seq(self.random), 0)

    def test_joins_and_leaves_write_nothing_to_the_database(self):
        # No lock on the room, no row per socket: a crowd's joins go on side by side.
        with CaptureQueriesContext(connection) as queries:
            services.room_join(room=self.general, user=self.alice, reply_channel="a")
            services.room_join(room=self.general, user=self.bob, reply_channel="b")
            services.room_leave(room=self.general, reply_channel="a", user=self.alice)
            services.socket_leave_all(reply_channel="b")
        statements = [query["sql"] for query in queries.captured_queries]
        self.assertTrue(all(sql.startswith("SELECT") for sql in statements), statements)

    def test_every_presence_frame_carries_the_seq_of_its_change_in_order(self):
        room_watcher = listener(self.general.group_name)
        lobby = listener(LOBBY_GROUP)
        alice = self.joined(self.alice)
        bob = self.joined(self.bob)
        boss = self.joined(self.boss)
        bob.send_json({"command": "leave", "room": "general"})
        boss.disconnect()
        # boss's disconnect is a leave once his grace ran out, told then by the reaper.
        presence.reap(now=time.time() + presence.grace_seconds() + 1)
        alice.send_json({"command": "leave", "room": "general"})

        notices = room_watcher.frames()
        self.assertEqual(
            [(f["type"], f["username"], f["members"]) for f in notices],
            [
                ("joined", "alice", 1),
                ("joined", "bob", 2),
                ("joined", "boss", 3),
                ("left", "bob", 2),
                ("left", "boss", 1),
                ("left", "alice", 0),
            ],
        )
        seqs = [f["seq"] for f in notices]
        self.assertEqual(seqs, sorted(set(seqs)), "strictly increasing")
        self.assertEqual(
            [(f["members"], f["seq"]) for f in lobby.frames()], [(f["members"], f["seq"]) for f in notices]
        )
        self.assertEqual(self.seq(self.general), seqs[-1])

    def test_the_join_reply_carries_the_seq_of_the_join(self):
        bob = services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        watcher = listener(self.general.group_name)
        alice = self.socket(self.alice)
        alice.send_json({"command": "join", "room": "general"})
        (reply,) = [f for f in alice.frames() if "join" in f]
        self.assertEqual(reply["members"], 2)
        self.assertGreater(reply["seq"], bob.seq)
        self.assertEqual([f["seq"] for f in watcher.frames() if f.get("type") == "joined"], [reply["seq"]])

    def test_the_page_renders_each_rooms_count_and_seq(self):
        bob = services.room_join(room=self.general, user=self.bob, reply_channel="sock.b")
        page = Client()
        page.force_login(self.alice)
        response = page.get("/chat/")
        self.assertContains(response, f'data-room="general" data-seq="{bob.seq}"')
        self.assertContains(response, 'data-room="random" data-seq="0"')
        self.assertContains(response, '<span class="count">1</span> here')
