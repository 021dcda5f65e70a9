"""Data binding over a demultiplexer, the Channels 1 documentation's own example with a Thing."""

from channels.binding.websockets import WebsocketBinding

from tests.kit.channels1.generic import EchoDemultiplexer, EchoStream
from tests.kit.channels1.things.models import Thing

GROUP = "things"


class ThingBinding(WebsocketBinding):
    model = Thing
    stream = "things"
    fields = ["name"]

    @classmethod
    def group_names(cls, instance):
        return [GROUP]

    def has_permission(self, user, action, pk):
        return True


class Demultiplexer(EchoDemultiplexer):
    consumers = {"echo": EchoStream, "things": ThingBinding.consumer}

    def connection_groups(self, **kwargs):
        return [GROUP]
