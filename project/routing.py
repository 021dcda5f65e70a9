"""The channel routing that runworker serves: each app mounts its own routing under its path."""

from channels.routing import include, route

from project import consumers, websocket

channel_routing = [
    include("liveblog.routing.websocket_routing", path=r"^/liveblog/(?P<slug>[-\w]+)/stream/?$"),
    include("chat.routing.websocket_routing", path=r"^/chat/stream/?$"),
    # Last: a handshake on any other path is refused at once.
    route("websocket.connect", websocket.refuse_unknown_path),
    # `manage.py worker_health` (project/management/commands/worker_health.py).
    route(consumers.HEALTH_CHANNEL, consumers.worker_health),
]
