"""The channel routing that runworker serves: each app mounts its own routing under its path.

The kit adds its worker health channel to every runworker itself (channels1_kit/apps.py).
"""

from channels.routing import include, route

from channels1_kit import websocket
from liveblog import routing as liveblog_routing

channel_routing = [
    include("liveblog.routing.websocket_routing", path=liveblog_routing.STREAM_PATH),
    include("chat.routing.websocket_routing", path=r"^/chat/stream/?$"),
    # Last: a handshake on any other path is refused at once.
    route("websocket.connect", websocket.refuse_unknown_path),
]
