from channels.routing import include, route, route_class

from tests.kit.channels1 import consumers
from tests.kit.channels1.bindings import Demultiplexer
from tests.kit.channels1.generic import EchoJson

named_routing = [
    route("websocket.connect", consumers.named_connect, path=r"^/(?P<name>[a-z]+)/$"),
    route("websocket.receive", consumers.named_receive, path=r"^/(?P<name>[a-z]+)/$"),
]

# http.request is not routed: channels hands it to Django's views.
channel_routing = [
    route_class(EchoJson, path=r"^/json/$"),
    route_class(Demultiplexer, path=r"^/demux/$"),
    include(named_routing, path=r"^/named"),
    route("probe.a", consumers.probe),
    route("probe.b", consumers.probe),
]
