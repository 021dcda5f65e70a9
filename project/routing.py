"""The channel routing that runworker serves: each app mounts its own routing under its path."""

from channels.routing import include, route

from project import consumers

channel_routing = [
    include("liveblog.routing.websocket_routing", path=r"^/liveblog/(?P<slug>[-\w]+)/stream/?$"),
    include("chat.routing.websocket_routing", path=r"^/chat/stream/?$"),
    # `manage.py worker_health` (project/management/commands/worker_health.py).
    route(consumers.HEALTH_CHANNEL, consumers.worker_health),
]
