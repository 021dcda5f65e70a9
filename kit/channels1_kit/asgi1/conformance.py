"""A conformance suite for ASGI 1 channel layers, written for this kit from the ASGI 1
"Channel Layer" specification (it is not asgiref's suite, which asgiref 3 no longer ships).

It checks what the specification asks of every layer (``send``, ``receive`` and
``new_channel``; normal, single-reader ``?`` and process-specific ``!`` channels; expiry;
capacity and ``ChannelFull``; names that are refused with ``TypeError``; messages that the
sender goes on changing) and of the ``groups`` and ``flush`` extensions when the layer
lists them in ``extensions``. A test for an extension the layer lacks is skipped, saying so.

One thing the specification allows is left out on purpose: ``new_channel`` is tried with
``?`` patterns only. Its text also allows ``!`` patterns, but asgi_redis 1.4.3 (and every
layer built on it) refuses them, and nothing in channels 1.1.8 or daphne 1.4.2 asks for
one: daphne names its own process-specific channels.

To run it against a layer, subclass ``ConformanceTestCase`` and set::

    class MyLayerTests(conformance.ConformanceTestCase):
        channel_layer = MyLayer(expiry=1, group_expiry=2, capacity=5)
        expiry_delay = 1.1    # seconds after which a sent message must have expired
        capacity_limit = 5    # messages a channel takes before ChannelFull; None skips those tests
        receive_tries = 1     # receive() calls a test makes before it takes "nothing" for an answer

Import the module rather than the class (``from channels1_kit.asgi1 import conformance``, or
``from asgiref import conformance`` through the loader), or pytest collects the base class
too; the base class skips itself anyway. Override ``receive(self, channels)`` to receive some
other way (a Twisted or asyncio receive, say): the tests take every message through it, and
call the layer's own ``receive`` only to see it refuse names. Tests that wait for expiry take
``expiry_delay`` seconds, and the group-expiry test about ``group_expiry + 1`` seconds; it is
skipped when the layer's ``group_expiry`` is longer than ``longest_group_expiry``. If the
layer has the ``flush`` extension, every test starts from a flushed layer; every test also
uses channel and group names of its own.
"""

import re
import time
import unittest
import uuid

_NOTHING = (None, None)
# What the random part new_channel adds may be made of: the characters of any channel name.
_NAME_PART = re.compile(r"[a-zA-Z0-9\-_.]+\Z")


class ConformanceTestCase(unittest.TestCase):
    """The ASGI 1 channel-layer requirements, as tests; abstract: subclass it (see the module)."""

    channel_layer = None
    expiry_delay: float | None = None
    capacity_limit: int | None = None
    receive_tries = 1
    # The group-expiry test waits a little longer than the layer's group_expiry; past this many
    # seconds it is skipped rather than slow the suite down.
    longest_group_expiry = 10

    @classmethod
    def setUpClass(cls):
        if cls is ConformanceTestCase:
            raise unittest.SkipTest("the abstract conformance suite: run it through a subclass")
        super().setUpClass()

    def setUp(self):
        missing = [name for name in ("channel_layer", "expiry_delay") if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"{type(self).__name__} subclasses ConformanceTestCase but does not set "
                f"{' or '.join(missing)}: set them as class attributes (see channels1_kit.asgi1.conformance)."
            )
        if "flush" in self.channel_layer.extensions:
            self.channel_layer.flush()

    # Helpers

    def receive(self, channels):
        """One message from any of channels, as (channel, message), or (None, None).

        Normal channels need not hand out a waiting message on every call (a sharded layer
        may look on one server per call), so this asks up to ``receive_tries`` times.
        """
        for _ in range(self.receive_tries):
            channel, message = self.channel_layer.receive(channels)
            if channel is not None:
                return channel, message
        return _NOTHING

    def unique_name(self, base, kind=""):
        """A name no other test uses: ``base`` plus a random part, then ``kind`` ("?" or "!")."""
        return f"{base}.{uuid.uuid4().hex[:12]}{kind}"

    def require_extension(self, extension):
        if extension not in self.channel_layer.extensions:
            self.skipTest(f"the layer does not list the {extension!r} extension")

    def require_capacity(self):
        if self.capacity_limit is None:
            self.skipTest("capacity_limit is not set")
        return self.capacity_limit

    def receive_all(self, channels, limit=1000):
        """Every message receive() hands out for channels, in order, until it hands out nothing."""
        received = []
        for _ in range(limit):
            channel, message = self.receive(channels)
            if channel is None:
                return received
            received.append((channel, message))
        self.fail(f"{channels} still had messages after {limit} receives")

    def receive_exactly(self, channels, count):
        """The next count messages on channels; unlike receive_all, it does not then wait for nothing."""
        received = []
        for _ in range(count):
            channel, message = self.receive(channels)
            self.assertIsNotNone(channel, f"expected {count} messages on {channels}, got {received}")
            received.append((channel, message))
        return received

    def assertNothingWaiting(self, channels):
        self.assertEqual(self.receive(channels), _NOTHING, f"expected no message on {channels}")

    def assertRefusedName(self, call, *args):
        with self.assertRaises(TypeError, msg=f"{call.__name__}{args!r} accepted an invalid name"):
            call(*args)

    # Sending and receiving

    def test_message_arrives_unchanged_on_its_channel(self):
        channel = self.unique_name("conformance.plain")
        message = {
            "text": "héllo",
            "bytes": b"\x00\xffraw",
            "number": 2**31,
            "negative": -7,
            "flag": True,
            "nothing": None,
            "items": [1, "two", [b"three"]],
            "nested": {"key": {"deeper": False}},
        }
        self.channel_layer.send(channel, message)
        self.assertEqual(self.receive([channel]), (channel, message))

    def test_empty_channel_gives_none_pair(self):
        self.assertNothingWaiting([self.unique_name("conformance.empty")])

    def test_message_is_delivered_once(self):
        channel = self.unique_name("conformance.once")
        self.channel_layer.send(channel, {"n": 1})
        self.assertEqual(self.receive([channel]), (channel, {"n": 1}))
        self.assertNothingWaiting([channel])

    def test_receive_from_several_channels(self):
        first, second, idle = (self.unique_name(f"conformance.{part}") for part in ("first", "second", "idle"))
        self.channel_layer.send(first, {"from": "first"})
        self.channel_layer.send(second, {"from": "second"})
        received = self.receive_all([idle, first, second])
        self.assertCountEqual(received, [(first, {"from": "first"}), (second, {"from": "second"})])

    def test_process_specific_channel_is_received_by_its_prefix(self):
        prefix = self.unique_name("conformance.process", "!")
        self.channel_layer.send(prefix + "socket1", {"to": 1})
        self.channel_layer.send(prefix + "socket2", {"to": 2})
        # The full name comes back, so the receiving process can tell its clients apart.
        self.assertEqual(self.receive_all([prefix]), [(prefix + "socket1", {"to": 1}), (prefix + "socket2", {"to": 2})])

    def test_process_specific_channel_is_not_received_by_its_full_name(self):
        prefix = self.unique_name("conformance.process", "!")
        self.assertRefusedName(self.channel_layer.receive, [prefix + "socket1"])

    def test_single_reader_and_process_specific_channels_keep_order(self):
        count = min(4, self.capacity_limit or 4)
        single_reader = self.channel_layer.new_channel(self.unique_name("conformance.ordered", "?"))
        prefix = self.unique_name("conformance.ordered", "!")
        for number in range(count):
            self.channel_layer.send(single_reader, {"n": number})
            self.channel_layer.send(f"{prefix}local{number % 2}", {"n": number})
        received = self.receive_all([single_reader, prefix])
        self.assertEqual(
            [item for item in received if item[0] == single_reader], [(single_reader, {"n": n}) for n in range(count)]
        )
        self.assertEqual(
            [item for item in received if item[0].startswith(prefix)],
            [(f"{prefix}local{n % 2}", {"n": n}) for n in range(count)],
        )
        self.assertEqual(len(received), 2 * count)

    def test_new_channel_gives_fresh_single_reader_names(self):
        pattern = self.unique_name("conformance.fresh", "?")
        names = {self.channel_layer.new_channel(pattern) for _ in range(5)}
        self.assertEqual(len(names), 5, "new_channel returned the same name twice")
        for name in names:
            self.assertIsInstance(name, str)
            self.assertTrue(name.startswith(pattern), name)
            self.assertRegex(name[len(pattern) :], _NAME_PART)
        name = names.pop()
        self.channel_layer.send(name, {"fresh": True})
        self.assertEqual(self.receive([name]), (name, {"fresh": True}))

    def test_new_channel_refuses_pattern_without_type_character(self):
        for pattern in ("conformance.untyped", "conformance.untyped.", ""):
            try:
                name = self.channel_layer.new_channel(pattern)
            except Exception:  # The specification asks for an error, of no particular type.
                continue
            self.fail(f"new_channel({pattern!r}) returned {name!r} instead of failing")

    def test_sender_changes_after_send_do_not_reach_receiver(self):
        channel = self.unique_name("conformance.copied")
        message = {"status": "sent", "items": [1, 2], "inner": {"seen": False}}
        self.channel_layer.send(channel, message)
        message["status"] = "changed"
        message["items"].append(3)
        message["inner"]["seen"] = True
        message["added"] = "later"
        sent = {"status": "sent", "items": [1, 2], "inner": {"seen": False}}
        self.assertEqual(self.receive([channel]), (channel, sent))

    # Names

    def test_invalid_or_non_text_channel_names_raise_type_error(self):
        invalid = [
            b"conformance.bytes",
            "",
            "conformance with spaces",
            "conformance.accentué",
            "conformance/slash",
            "conformance.newline\n",
            "?conformance",
            "!conformance",
            None,
            42,
        ]
        for name in invalid:
            with self.subTest(name=name):
                self.assertRefusedName(self.channel_layer.send, name, {"valid": False})
                self.assertRefusedName(self.channel_layer.receive, [name])

    def test_names_of_one_hundred_characters_work(self):
        # Channels must allow names of at least 100 bytes.
        plain = self.unique_name("conformance.long").ljust(100, "x")
        prefix = self.unique_name("conformance.long", "!")
        process_specific = prefix.ljust(100, "y")
        self.assertEqual((len(plain), len(process_specific)), (100, 100))
        self.channel_layer.send(plain, {"long": "plain"})
        self.channel_layer.send(process_specific, {"long": "process"})
        self.assertEqual(self.receive([plain]), (plain, {"long": "plain"}))
        self.assertEqual(self.receive([prefix]), (process_specific, {"long": "process"}))

    def test_invalid_or_non_text_group_names_raise_type_error(self):
        self.require_extension("groups")
        channel = self.unique_name("conformance.member")
        for group in [b"conformance.bytes", "", "conformance group", "conformance.grüppe", None]:
            with self.subTest(group=group):
                self.assertRefusedName(self.channel_layer.group_add, group, channel)
                self.assertRefusedName(self.channel_layer.group_discard, group, channel)
                self.assertRefusedName(self.channel_layer.send_group, group, {"valid": False})
        group = self.unique_name("conformance.group")
        for member in [b"conformance.bytes", "conformance member", None]:
            with self.subTest(channel=member):
                self.assertRefusedName(self.channel_layer.group_add, group, member)
                self.assertRefusedName(self.channel_layer.group_discard, group, member)

    # Exceptions and extensions

    def test_exceptions_and_extensions_are_class_attributes(self):
        layer_class = type(self.channel_layer)
        for exception in ("ChannelFull", "MessageTooLarge"):
            with self.subTest(exception=exception):
                self.assertTrue(issubclass(getattr(layer_class, exception), Exception))
                self.assertIs(getattr(self.channel_layer, exception), getattr(layer_class, exception))
        self.assertIsNot(layer_class.ChannelFull, layer_class.MessageTooLarge)
        self.assertIsInstance(self.channel_layer.extensions, list)
        self.assertTrue(all(isinstance(extension, str) for extension in self.channel_layer.extensions))

    # Expiry

    def test_unread_messages_expire(self):
        plain = self.unique_name("conformance.expiring")
        single_reader = self.channel_layer.new_channel(self.unique_name("conformance.expiring", "?"))
        prefix = self.unique_name("conformance.expiring", "!")
        self.channel_layer.send(plain, {"stale": True})
        self.channel_layer.send(single_reader, {"stale": True})
        self.channel_layer.send(prefix + "socket", {"stale": True})
        time.sleep(self.expiry_delay)
        self.assertNothingWaiting([plain, single_reader, prefix])
        # The channels themselves still work.
        self.channel_layer.send(single_reader, {"stale": False})
        self.channel_layer.send(prefix + "socket", {"stale": False})
        self.assertEqual(self.receive([single_reader]), (single_reader, {"stale": False}))
        self.assertEqual(self.receive([prefix]), (prefix + "socket", {"stale": False}))

    # Capacity

    def test_full_channel_raises_channel_full(self):
        limit = self.require_capacity()
        channel = self.unique_name("conformance.full")
        for number in range(limit):
            self.channel_layer.send(channel, {"n": number})
        with self.assertRaises(self.channel_layer.ChannelFull):
            self.channel_layer.send(channel, {"n": limit})
        self.assertCountEqual(self.receive_all([channel]), [(channel, {"n": n}) for n in range(limit)])

    def test_full_process_specific_channel_raises_channel_full_until_read(self):
        limit = self.require_capacity()
        prefix = self.unique_name("conformance.full", "!")
        channel = prefix + "socket"
        for number in range(limit):
            self.channel_layer.send(channel, {"n": number})
        with self.assertRaises(self.channel_layer.ChannelFull):
            self.channel_layer.send(channel, {"n": "refused"})
        # Reading one makes room for one.
        self.assertEqual(self.receive([prefix]), (channel, {"n": 0}))
        self.channel_layer.send(channel, {"n": limit})
        self.assertEqual(self.receive_all([prefix]), [(channel, {"n": n}) for n in range(1, limit + 1)])

    def test_group_send_skips_full_members_without_raising(self):
        self.require_extension("groups")
        limit = self.require_capacity()
        group = self.unique_name("conformance.crowd")
        full_prefix = self.unique_name("conformance.full", "!")
        roomy_prefix = self.unique_name("conformance.roomy", "!")
        self.channel_layer.group_add(group, full_prefix + "socket")
        self.channel_layer.group_add(group, roomy_prefix + "socket")
        for number in range(limit):
            self.channel_layer.send_group(group, {"n": number})
        # One member is read, the other stays full: the next message reaches the first only.
        self.assertEqual(
            self.receive_exactly([roomy_prefix], limit), [(roomy_prefix + "socket", {"n": n}) for n in range(limit)]
        )
        self.channel_layer.send_group(group, {"n": limit})
        self.assertEqual(self.receive([roomy_prefix]), (roomy_prefix + "socket", {"n": limit}))
        self.assertEqual(
            self.receive_exactly([full_prefix], limit), [(full_prefix + "socket", {"n": n}) for n in range(limit)]
        )
        self.assertNothingWaiting([full_prefix, roomy_prefix])

    # The groups extension

    def test_group_send_reaches_every_member_once(self):
        self.require_extension("groups")
        group = self.unique_name("conformance.group")
        plain = self.unique_name("conformance.plain")
        single_reader = self.channel_layer.new_channel(self.unique_name("conformance.single", "?"))
        prefix = self.unique_name("conformance.process", "!")
        for channel in (plain, single_reader, prefix + "one", prefix + "two"):
            self.channel_layer.group_add(group, channel)
        # Adding a member again changes nothing.
        self.channel_layer.group_add(group, plain)
        self.channel_layer.send_group(group, {"news": "posted"})
        members = [plain, single_reader, prefix + "one", prefix + "two"]
        self.assertCountEqual(
            self.receive_all([plain, single_reader, prefix]), [(channel, {"news": "posted"}) for channel in members]
        )

    def test_discarded_member_gets_no_more_group_messages(self):
        self.require_extension("groups")
        group = self.unique_name("conformance.group")
        prefix = self.unique_name("conformance.process", "!")
        staying, leaving = prefix + "staying", prefix + "leaving"
        self.channel_layer.group_add(group, staying)
        self.channel_layer.group_add(group, leaving)
        self.channel_layer.group_discard(group, leaving)
        # Discarding what is not a member, or from a group that does not exist, is no error.
        self.channel_layer.group_discard(group, leaving)
        self.channel_layer.group_discard(self.unique_name("conformance.nogroup"), staying)
        self.channel_layer.send_group(group, {"after": "discard"})
        self.assertEqual(self.receive_all([prefix]), [(staying, {"after": "discard"})])

    def test_group_channels_lists_current_members(self):
        self.require_extension("groups")
        group = self.unique_name("conformance.group")
        members = [self.unique_name("conformance.plain"), self.unique_name("conformance.process", "!") + "socket"]
        leaving = self.unique_name("conformance.leaving")
        self.assertEqual(list(self.channel_layer.group_channels(group)), [])
        for channel in [*members, leaving, members[0]]:
            self.channel_layer.group_add(group, channel)
        self.channel_layer.group_discard(group, leaving)
        listed = list(self.channel_layer.group_channels(group))
        self.assertCountEqual(listed, members)
        self.assertTrue(all(isinstance(channel, str) for channel in listed))

    def test_group_members_get_messages_of_their_own(self):
        self.require_extension("groups")
        group = self.unique_name("conformance.group")
        prefix = self.unique_name("conformance.process", "!")
        self.channel_layer.group_add(group, prefix + "a")
        self.channel_layer.group_add(group, prefix + "b")
        message = {"items": ["x"], "inner": {"read": False}}
        self.channel_layer.send_group(group, message)
        # Neither the sender's later changes nor one receiver's reach another receiver.
        message["items"].append("sender")
        message["inner"]["read"] = True
        (_, first), (_, second) = self.receive_all([prefix])
        first["items"].append("receiver")
        first["inner"]["read"] = True
        self.assertEqual(second, {"items": ["x"], "inner": {"read": False}})

    def test_group_membership_expires_after_the_last_group_add(self):
        self.require_extension("groups")
        group_expiry = getattr(self.channel_layer, "group_expiry", None)
        self.assertIsNotNone(group_expiry, "a layer with the groups extension must expose group_expiry")
        if group_expiry > self.longest_group_expiry:
            self.skipTest(f"group_expiry is {group_expiry}s, longer than longest_group_expiry")
        group = self.unique_name("conformance.group")
        prefix = self.unique_name("conformance.process", "!")
        forgotten, renewed = prefix + "forgotten", prefix + "renewed"
        # A layer may keep time in whole seconds, so a membership may last up to a second
        # longer than group_expiry; the renewed one is added again after at least that second.
        started = time.monotonic()
        self.channel_layer.group_add(group, forgotten)
        self.channel_layer.group_add(group, renewed)
        time.sleep(1.05 + group_expiry / 2)
        self.channel_layer.group_add(group, renewed)
        time.sleep(max(0.0, started + group_expiry + 1.05 - time.monotonic()))
        self.assertEqual(list(self.channel_layer.group_channels(group)), [renewed])
        self.channel_layer.send_group(group, {"after": "expiry"})
        self.assertEqual(self.receive_all([prefix]), [(renewed, {"after": "expiry"})])

    # The flush extension

    def test_flush_drops_every_message(self):
        self.require_extension("flush")
        plain = self.unique_name("conformance.plain")
        single_reader = self.channel_layer.new_channel(self.unique_name("conformance.single", "?"))
        prefix = self.unique_name("conformance.process", "!")
        self.channel_layer.send(plain, {"flushed": True})
        self.channel_layer.send(single_reader, {"flushed": True})
        for number in range(3):
            self.channel_layer.send(prefix + "socket", {"n": number})
        # One message received first: a layer that holds back what it fetched must drop that too.
        self.assertEqual(self.receive([prefix]), (prefix + "socket", {"n": 0}))
        self.channel_layer.flush()
        self.assertNothingWaiting([plain, single_reader, prefix])

    def test_flush_drops_every_group(self):
        self.require_extension("groups")
        self.require_extension("flush")
        group = self.unique_name("conformance.group")
        prefix = self.unique_name("conformance.process", "!")
        self.channel_layer.group_add(group, prefix + "socket")
        self.channel_layer.flush()
        self.assertEqual(list(self.channel_layer.group_channels(group)), [])
        self.channel_layer.send_group(group, {"flushed": True})
        self.assertNothingWaiting([prefix])
