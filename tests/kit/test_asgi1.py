"""The kit's ASGI 1 modules: the conformance suite on the in-memory layer, the suite's own
teeth (it must fail layers that break the specification), and what base_layer and inmemory
do beyond what the suite checks."""

import re
import time
import unittest
import warnings
from collections import deque

import pytest

from channels1_kit.asgi1 import base_layer, conformance, inmemory
from channels1_kit.asgi1.base_layer import BaseChannelLayer
from channels1_kit.asgi1.inmemory import ChannelLayer

# The suite on the in-memory layer


class TestInMemoryConformance(conformance.ConformanceTestCase):
    channel_layer = ChannelLayer(expiry=0.3, group_expiry=1, capacity=4)
    expiry_delay = 0.4
    capacity_limit = 4


class TestInMemoryConformanceWithCapacityPatterns(conformance.ConformanceTestCase):
    """Per-channel capacities from patterns apply as the layer's default does."""

    channel_layer = ChannelLayer(expiry=0.3, group_expiry=1, capacity=50, channel_capacity={"conformance.*": 3})
    expiry_delay = 0.4
    capacity_limit = 3


# The suite against layers that break the specification: each named test must fail.


def run_suite_test(layer, test_name, **attributes):
    """Runs one conformance test against layer; returns the unittest result."""
    settings = {"channel_layer": layer, "expiry_delay": 0.2, "capacity_limit": 3, **attributes}
    case = type("BrokenLayerConformance", (conformance.ConformanceTestCase,), settings)
    result = unittest.TestResult()
    unittest.TestSuite([case(test_name)]).run(result)
    return result


class KeepsSentDict(ChannelLayer):
    def send(self, channel, message):
        super().send(channel, message)
        queue = self._queues[self.non_local_name(channel)]
        expires, name, _ = queue.pop()
        queue.append((expires, name, message))


class AcceptsAnyName(ChannelLayer):
    def valid_channel_name(self, name, receive=False):
        return True

    def non_local_name(self, name):
        return name.partition("!")[0] + "!" if isinstance(name, str) and "!" in name else name


class RaisesOnFullGroupMember(ChannelLayer):
    def send_group(self, group, message):
        for channel in self.group_channels(group):
            self.send(channel, message)


class KeepsFirstGroupAdd(ChannelLayer):
    def group_add(self, group, channel):
        self.valid_group_name(group)
        self._groups.setdefault(group, {}).setdefault(channel, time.time())


class IgnoresGroupExpiry(ChannelLayer):
    def group_channels(self, group):
        return list(self._groups.get(group, {}))


class FlushKeepsGroups(ChannelLayer):
    def flush(self):
        self._queues.clear()


class ReturnsReceivedName(ChannelLayer):
    def receive(self, channels, block=False):
        channel, message = super().receive(channels, block)
        return (self.non_local_name(channel) if channel else None), message


class ReusesNames(ChannelLayer):
    def new_channel(self, pattern):
        return pattern + "same"


class DeliversGroupMessageTwice(ChannelLayer):
    def send_group(self, group, message):
        super().send_group(group, message)
        super().send_group(group, message)


class SharesGroupMessage(ChannelLayer):
    def send_group(self, group, message):
        shared = dict(message)
        for channel in self.group_channels(group):
            queue = self._queues.setdefault(self.non_local_name(channel), deque())
            queue.append((time.time() + self.expiry, channel, shared))


BROKEN_LAYERS = [
    (KeepsSentDict(), "test_sender_changes_after_send_do_not_reach_receiver", {}),
    (AcceptsAnyName(), "test_invalid_or_non_text_channel_names_raise_type_error", {}),
    (ChannelLayer(expiry=60), "test_unread_messages_expire", {}),
    (ChannelLayer(capacity=100), "test_full_channel_raises_channel_full", {}),
    (ChannelLayer(capacity=100), "test_full_process_specific_channel_raises_channel_full_until_read", {}),
    (RaisesOnFullGroupMember(capacity=3), "test_group_send_skips_full_members_without_raising", {}),
    (KeepsFirstGroupAdd(group_expiry=1), "test_group_membership_expires_after_the_last_group_add", {}),
    (IgnoresGroupExpiry(group_expiry=1), "test_group_membership_expires_after_the_last_group_add", {}),
    (FlushKeepsGroups(), "test_flush_drops_every_group", {}),
    (ReturnsReceivedName(), "test_process_specific_channel_is_received_by_its_prefix", {}),
    (ReusesNames(), "test_new_channel_gives_fresh_single_reader_names", {}),
    (DeliversGroupMessageTwice(), "test_group_send_reaches_every_member_once", {}),
    (SharesGroupMessage(), "test_group_members_get_messages_of_their_own", {}),
]


@pytest.mark.parametrize(
    ("layer", "test_name", "attributes"),
    BROKEN_LAYERS,
    ids=[f"{type(layer).__name__}-{name}" for layer, name, _ in BROKEN_LAYERS],
)
def test_suite_fails_a_layer_that_breaks_the_specification(layer, test_name, attributes):
    result = run_suite_test(layer, test_name, **attributes)
    assert result.testsRun == 1
    assert not result.skipped, result.skipped
    assert not result.wasSuccessful(), "the conformance test passed a broken layer"


def test_suite_passes_the_same_tests_on_a_sound_layer():
    """The broken layers above fail for their fault, not because the tests fail anyway."""
    for _, test_name, attributes in BROKEN_LAYERS:
        result = run_suite_test(ChannelLayer(expiry=0.1, group_expiry=1, capacity=3), test_name, **attributes)
        assert result.wasSuccessful() and not result.skipped, (test_name, result.failures, result.errors)


def test_suite_base_class_does_not_run():
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(conformance.ConformanceTestCase).run(result)
    assert result.testsRun == 0 and result.wasSuccessful()
    assert result.skipped and all("abstract" in reason for _, reason in result.skipped)


@pytest.mark.parametrize("missing", ["channel_layer", "expiry_delay"])
def test_suite_explains_a_missing_setting(missing):
    result = run_suite_test(ChannelLayer(), "test_message_is_delivered_once", **{missing: None})
    [(_, traceback)] = result.errors
    assert "ValueError" in traceback and missing in traceback


def test_suite_skips_extensions_the_layer_lacks_and_capacity_tests_without_a_limit():
    class CoreOnly(ChannelLayer):
        extensions = []

    for test_name, reason in [
        ("test_group_send_reaches_every_member_once", "'groups' extension"),
        ("test_flush_drops_every_message", "'flush' extension"),
        ("test_full_channel_raises_channel_full", "capacity_limit"),
    ]:
        result = run_suite_test(CoreOnly(), test_name, capacity_limit=None)
        [(_, skip_reason)] = result.skipped
        assert reason in skip_reason


def test_suite_flushes_before_each_test():
    layer = ChannelLayer()
    layer.send("left.over", {"from": "before"})
    layer.group_add("left.group", "left.over")
    result = run_suite_test(layer, "test_empty_channel_gives_none_pair")
    assert result.wasSuccessful()
    assert layer.receive(["left.over"]) == (None, None)
    assert layer.group_channels("left.group") == []


def test_suite_receives_through_its_receive_method():
    calls = []

    class Counting(conformance.ConformanceTestCase):
        channel_layer = ChannelLayer()
        expiry_delay = 0.2
        receive_tries = 3

        def receive(self, channels):
            calls.append(channels)
            return super().receive(channels)

    result = unittest.TestResult()
    unittest.TestSuite([Counting("test_empty_channel_gives_none_pair")]).run(result)
    assert result.wasSuccessful() and len(calls) == 1


def test_receive_retries_receive_tries_times():
    class FlakyLayer(ChannelLayer):
        misses = 0

        def receive(self, channels, block=False):
            if self.misses < 2:
                self.misses += 1
                return None, None
            return super().receive(channels, block)

    assert run_suite_test(FlakyLayer(), "test_message_is_delivered_once", receive_tries=3).wasSuccessful()
    assert not run_suite_test(FlakyLayer(), "test_message_is_delivered_once", receive_tries=2).wasSuccessful()


# base_layer

VALID_CHANNELS = ["http.request", "a", "Chat-room_1.send", "http.response!", "http.response!c1a2", "body?x9-_."]
INVALID_CHANNELS = [
    b"http.request",
    None,
    3,
    "",
    "has space",
    "ünïcode",
    "slash/name",
    "star*",
    "colon:name",
    "trailing.newline\n",
    "?starts",
    "!starts",
    "body?",  # a single-reader name needs its random part
    "two?marks?x",
    "mixed?a!b",
    "bang!!",
    "x" * 101,
]


@pytest.mark.parametrize("name", VALID_CHANNELS)
def test_valid_channel_names_are_accepted(name):
    assert BaseChannelLayer().valid_channel_name(name) is True


@pytest.mark.parametrize("name", INVALID_CHANNELS)
def test_invalid_channel_names_raise_type_error(name):
    with pytest.raises(TypeError, match="Invalid channel name"):
        BaseChannelLayer().valid_channel_name(name)
    with pytest.raises(TypeError, match="Invalid channel name"):
        BaseChannelLayer().valid_channel_name(name, receive=True)


def test_names_of_up_to_one_hundred_characters_are_accepted():
    layer = BaseChannelLayer()
    assert base_layer.MAX_NAME_LENGTH == 100
    assert layer.valid_channel_name("x" * 100)
    assert layer.valid_channel_name("x" * 50 + "!" + "y" * 49)
    assert layer.valid_group_name("g" * 100)
    with pytest.raises(TypeError):
        layer.valid_group_name("g" * 101)


def test_process_local_names_are_received_by_their_prefix_only():
    layer = BaseChannelLayer()
    assert layer.valid_channel_name("daphne.response.abc!", receive=True)
    assert layer.valid_channel_name("daphne.response.abc!client1")
    with pytest.raises(TypeError, match="prefix"):
        layer.valid_channel_name("daphne.response.abc!client1", receive=True)
    # A single-reader name is received whole.
    assert layer.valid_channel_name("http.request.body?abc", receive=True)


@pytest.mark.parametrize("name", ["group", "chat.room-1_a", "G" * 100])
def test_valid_group_names_are_accepted(name):
    assert BaseChannelLayer().valid_group_name(name) is True


@pytest.mark.parametrize("name", [b"group", None, "", "group!x", "group?x", "group!", "has space", "grüppe", "g\n"])
def test_invalid_group_names_raise_type_error(name):
    with pytest.raises(TypeError, match="Invalid group name"):
        BaseChannelLayer().valid_group_name(name)


def test_valid_channel_names_checks_a_non_empty_list():
    layer = BaseChannelLayer()
    assert layer.valid_channel_names(["a", "b!"], receive=True)
    with pytest.raises(TypeError):
        layer.valid_channel_names(["a", "b!c"], receive=True)
    for names in ([], ("a",), "a"):
        with pytest.raises(AssertionError):
            layer.valid_channel_names(names)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a!b", "a!"), ("a.b!", "a.b!"), ("x!y.z-1", "x!"), ("body?abc", "body?abc"), ("plain.name", "plain.name")],
)
def test_non_local_name(name, expected):
    assert BaseChannelLayer().non_local_name(name) == expected


def test_get_capacity_from_glob_and_regex_patterns_in_order():
    layer = BaseChannelLayer(
        capacity=7,
        channel_capacity={
            "http.response!*": 50,
            re.compile(r"^websocket\.(send|receive)"): 30,
            "http.*": 20,
            "chat.room.?": 5,
        },
    )
    assert layer.get_capacity("http.response!abc") == 50  # first match wins over "http.*"
    assert layer.get_capacity("http.request") == 20
    assert layer.get_capacity("websocket.send!x") == 30
    assert layer.get_capacity("websocket.receive") == 30
    assert layer.get_capacity("websocket.connect") == 7
    assert layer.get_capacity("chat.room.1") == 5
    assert layer.get_capacity("chat.room.12") == 7  # "?" in a glob is one character
    assert layer.get_capacity("xhttp.request") == 7  # globs match the whole name
    assert layer.get_capacity("other") == 7


def test_get_capacity_without_patterns_is_the_default():
    assert BaseChannelLayer(capacity=3).get_capacity("anything") == 3
    assert BaseChannelLayer().get_capacity("anything") == 100


def test_receive_many_warns_and_delegates_to_receive():
    layer = ChannelLayer()
    layer.send("legacy", {"old": "api"})
    with pytest.warns(DeprecationWarning, match="receive_many"):
        assert layer.receive_many(["legacy"]) == ("legacy", {"old": "api"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer.receive_many(["legacy"])
    # Reported where it is called, not inside the base layer.
    assert caught[0].filename == __file__


def test_base_layer_interface():
    layer = BaseChannelLayer(expiry=5, group_expiry=60)
    assert (layer.expiry, layer.group_expiry, layer.capacity, layer.extensions) == (5, 60, 100, [])
    assert issubclass(BaseChannelLayer.ChannelFull, Exception)
    assert issubclass(BaseChannelLayer.MessageTooLarge, Exception)
    for call, args in [
        (layer.send, ("a", {})),
        (layer.receive, (["a"],)),
        (layer.new_channel, ("a?",)),
        (layer.group_add, ("g", "a")),
        (layer.group_discard, ("g", "a")),
        (layer.group_channels, ("g",)),
        (layer.send_group, ("g", {})),
        (layer.flush, ()),
    ]:
        with pytest.raises(NotImplementedError):
            call(*args)


# inmemory


def test_inmemory_module_name_marks_it_local_only():
    # channels' runworker refuses a layer whose module name contains "inmemory".
    from channels.asgi import ChannelLayerWrapper

    assert "inmemory" in ChannelLayer.__module__
    assert ChannelLayerWrapper(ChannelLayer(), "default", []).local_only()
    assert isinstance(inmemory.channel_layer, ChannelLayer)


def test_inmemory_process_local_receive_returns_the_full_name():
    layer = ChannelLayer()
    layer.send("daphne.response.x!c1", {"n": 1})
    layer.send("daphne.response.x!c2", {"n": 2})
    layer.send("daphne.response.y!c1", {"n": 3})
    assert layer.receive(["daphne.response.x!"]) == ("daphne.response.x!c1", {"n": 1})
    assert layer.receive(["daphne.response.x!"]) == ("daphne.response.x!c2", {"n": 2})
    assert layer.receive(["daphne.response.x!"]) == (None, None)
    assert layer.receive(["daphne.response.y!"]) == ("daphne.response.y!c1", {"n": 3})


def test_inmemory_expired_message_drops_its_channel_from_groups():
    layer = ChannelLayer(expiry=0.1)
    for channel in ("gone!a", "kept!b", "read!c"):
        layer.group_add("room", channel)
        layer.group_add("other", channel)
    layer.send("gone!a", {"unread": True})
    layer.send("read!c", {"read": True})
    assert layer.receive(["read!"]) == ("read!c", {"read": True})
    time.sleep(0.15)
    assert sorted(layer.group_channels("room")) == ["kept!b", "read!c"]
    assert sorted(layer.group_channels("other")) == ["kept!b", "read!c"]
    # Added again, it is a member again.
    layer.group_add("room", "gone!a")
    assert sorted(layer.group_channels("room")) == ["gone!a", "kept!b", "read!c"]


def test_inmemory_group_membership_expires():
    layer = ChannelLayer(group_expiry=0.6)
    layer.group_add("room", "old")
    time.sleep(0.3)
    layer.group_add("room", "new")
    assert sorted(layer.group_channels("room")) == ["new", "old"]
    time.sleep(0.45)
    assert layer.group_channels("room") == ["new"]
    layer.send_group("room", {"to": "members"})
    assert layer.receive(["old", "new"]) == ("new", {"to": "members"})
    assert layer.receive(["old", "new"]) == (None, None)
    time.sleep(0.3)
    assert layer.group_channels("room") == []
    assert layer._groups == {}


def test_inmemory_channel_capacity_patterns():
    layer = ChannelLayer(capacity=5, channel_capacity={"small.*": 1})
    layer.send("small.one", {})
    with pytest.raises(ChannelLayer.ChannelFull):
        layer.send("small.one", {})
    for _ in range(5):
        layer.send("big.one", {})
    with pytest.raises(ChannelLayer.ChannelFull):
        layer.send("big.one", {})


def test_inmemory_receive_of_no_channels_gives_nothing():
    layer = ChannelLayer()
    assert layer.receive([]) == (None, None)
    layer.send("a", {"n": 1})
    assert layer.receive(iter(["a"])) == ("a", {"n": 1})


def test_inmemory_new_channel_checks_its_pattern():
    layer = ChannelLayer()
    assert re.fullmatch(r"reply![A-Za-z0-9]{12}", layer.new_channel("reply!"))
    assert re.fullmatch(r"body\?[A-Za-z0-9]{12}", layer.new_channel("body?"))
    with pytest.raises(AssertionError):
        layer.new_channel("no.type")
    with pytest.raises(TypeError):
        layer.new_channel("bad name?")


def test_inmemory_checks_group_names_everywhere():
    layer = ChannelLayer()
    for call, args in [
        (layer.group_add, (b"g", "a")),
        (layer.group_discard, (b"g", "a")),
        (layer.group_channels, (b"g",)),
        (layer.send_group, (b"g", {})),
    ]:
        with pytest.raises(TypeError):
            call(*args)
    with pytest.raises(TypeError):
        layer.group_add("g", "a!b!c")


def test_inmemory_messages_are_copied_on_send():
    layer = ChannelLayer()
    message = {"list": [1]}
    layer.send("a", message)
    message["list"].append(2)
    assert layer.receive(["a"]) == ("a", {"list": [1]})
    with pytest.raises(AssertionError):
        layer.send("a", ["not", "a", "dict"])
