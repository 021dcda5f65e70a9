"""The channel routing that runworker serves: each app mounts its own routing under its path."""

from channels.routing import include

channel_routing = [
    include("liveblog.routing.websocket_routing", path=r"^/liveblog/(?P<slug>[-\w]+)/stream/?$"),
    include("chat.routing.websocket_routing", path=r"^/chat/stream/?$"),
]
