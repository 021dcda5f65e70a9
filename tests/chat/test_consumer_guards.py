"""chat.consumers' guards: origins, rate limits, oversized and unstorable frames, stalled sockets."""

import json
from unittest import mock

from channels.exceptions import DenyConnection
from channels.test import TransactionChannelTestCase
from django.contrib.auth.models import User
from django.test import override_settings

from channels1_kit import presence, websocket
from channels1_kit.websocket import CLOSE_RECONNECT, OVERSIZED_KEY
from chat import conf, services
from chat.models import Message
from tests.support.channel_tests import IN_MEMORY_LAYERS, StreamClient

STREAM = "/chat/stream/"


@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS)
class GuardTestCase(TransactionChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="x")
        self.general = services.room_create(title="General", slug="general")
        self.random = services.room_create(title="Random", slug="random")

    def socket(self, *, origin=StreamClient.__init__.__kwdefaults__["origin"]) -> StreamClient:
        client = StreamClient(STREAM, origin=origin)
        client.force_login(self.alice)
        client.connect(check_accept=False)
        return client

    def joined(self) -> StreamClient:
        client = self.socket()
        self.assertEqual(client.next_content(), {"accept": True})
        client.send_json({"command": "join", "room": "general"})
        client.frames()
        return client


class OriginTests(GuardTestCase):
    def test_a_page_of_the_site_is_accepted(self):
        self.assertEqual(self.socket(origin="http://localhost:8000").next_content(), {"accept": True})

    def test_another_sites_page_is_refused_before_anything_happens(self):
        for origin in ("http://evil.example", "null", "http://localhost.evil.example", None):
            with self.subTest(origin=origin):
                # channels' DenyConnection: the worker closes the handshake, daphne answers 403.
                with self.assertRaises(DenyConnection):
                    self.socket(origin=origin)
        self.assertEqual(presence.all_sockets(), [])


def outcomes(frames) -> list:
    """Each reply as one word: the error code, the text of a message, or the room joined or left."""
    return [
        f.get("error") or f.get("join") or f.get("leave") or f["message"]
        for f in frames
        if "error" in f or "join" in f or "leave" in f or f.get("type") == "message"
    ]


class RateLimitTests(GuardTestCase):
    def test_sends_past_the_limit_are_refused_and_not_stored(self):
        client = self.joined()
        with mock.patch.object(conf, "RATE_LIMIT_MESSAGES", 3):
            for n in range(5):
                client.send_json({"command": "send", "room": "general", "message": f"m{n}"})
        frames = client.frames()
        self.assertEqual(outcomes(frames), ["m0", "m1", "m2"] + ["rate-limited"] * 2)
        self.assertIn("At most 3 messages every 10 s", frames[-1]["message"])
        self.assertEqual(list(Message.objects.values_list("text", flat=True)), ["m0", "m1", "m2"])

    def test_refused_sends_do_not_count(self):
        client = self.joined()
        with mock.patch.object(conf, "RATE_LIMIT_MESSAGES", 2):
            client.send_json({"command": "send", "room": "general", "message": "   "})
            client.send_json({"command": "send", "room": "general", "message": "one"})
            client.send_json({"command": "send", "room": "general", "message": "two"})
        self.assertEqual(outcomes(client.frames()), ["message-empty", "one", "two"])

    def test_the_window_slides(self):
        client = self.joined()
        with mock.patch.object(conf, "RATE_LIMIT_MESSAGES", 1), mock.patch("chat.consumers.time") as clock:
            clock.time.return_value = 1000.0
            client.send_json({"command": "send", "room": "general", "message": "first"})
            client.send_json({"command": "send", "room": "general", "message": "too soon"})
            clock.time.return_value = 1000.0 + conf.RATE_LIMIT_SECONDS + 0.1
            client.send_json({"command": "send", "room": "general", "message": "later"})
        self.assertEqual(outcomes(client.frames()), ["first", "rate-limited", "later"])

    def test_joins_and_leaves_have_a_limit_of_their_own(self):
        client = self.joined()  # one join
        with mock.patch.object(conf, "RATE_LIMIT_JOINS", 3):
            client.send_json({"command": "join", "room": "random"})
            client.send_json({"command": "leave", "room": "random"})
            client.send_json({"command": "join", "room": "random"})
            client.send_json({"command": "send", "room": "general", "message": "sends are counted apart"})
        self.assertEqual(outcomes(client.frames()), ["random", "random", "rate-limited", "sends are counted apart"])
        self.assertEqual(presence.sockets_in(self.random.group_name), [])


class FrameTests(GuardTestCase):
    def test_a_frame_daphne_kept_out_of_redis_for_its_size_gets_frame_too_large(self):
        client = self.joined()
        client.send_and_consume("websocket.receive", {OVERSIZED_KEY: 100_000}, path=STREAM)
        error = client.frame()
        self.assertEqual(error["error"], "frame-too-large")
        self.assertIn("65536 bytes", error["message"])

    def test_unstorable_text_and_deep_nesting_are_refused(self):
        client = self.joined()
        cases = {
            '{"command": "send", "room": "general", "message": "\\ud83d"}': "invalid-text",
            '{"command": "send", "room": "general", "message": "nul \\u0000"}': "invalid-text",
            '{"command": "join", "\\u0000room": "general"}': "invalid-text",
            "[" * 50_000: "invalid-json",
            "{" * 3: "invalid-json",
        }
        for text, code in cases.items():
            with self.subTest(text=text[:40]):
                client.send_text(text)
                self.assertEqual(client.frame()["error"], code)
        self.assertFalse(Message.objects.exists())

    def test_since_past_what_the_database_can_compare_is_invalid(self):
        client = self.joined()
        for since in (2**63, 10**30, -1, 1.0, "5", True):
            with self.subTest(since=since):
                client.send_json({"command": "history", "room": "general", "since": since})
                self.assertEqual(client.frame()["error"], "invalid-since")
        client.send_json({"command": "history", "room": "general", "since": 2**63 - 1})
        self.assertEqual(client.frame(), {"history": "general", "messages": []})


class StalledSocketTests(GuardTestCase):
    def test_frames_parked_too_long_behind_a_lost_one_close_the_socket(self):
        client = self.joined()  # frames 0 and 1 handled
        client.order += 1  # frame 2 was taken by a worker that was then killed
        parked = {"messages_pending": 1, "messages_max_age": 0}
        with mock.patch.object(websocket, "_parked_for", lambda message: parked["messages_max_age"]):
            client.send_json({"command": "send", "room": "general", "message": "parked"})
            self.assertIsNone(client.next_content())  # parked by enforce_ordering, waiting for frame 2
            parked["messages_max_age"] = 30
            with override_settings(CHANNELS1_KIT_ORDER_STALL_SECONDS=30):
                client.send_json({"command": "send", "room": "general", "message": "also parked"})
        self.assertEqual(client.next_content(), {"close": CLOSE_RECONNECT})
        self.assertFalse(Message.objects.exists())

    def test_frames_in_order_never_look_at_the_wait_channel(self):
        client = self.joined()
        with mock.patch.object(websocket, "_parked_for", side_effect=AssertionError("looked")):
            client.send_json({"command": "send", "room": "general", "message": "in order"})
        self.assertEqual(json.loads(client.next_content()["text"])["message"], "in order")
