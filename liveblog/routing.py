from channels.routing import route

from . import consumers

# Where project/routing.py mounts it; the kit's daphne knows it too (liveblog/apps.py).
STREAM_PATH = r"^/liveblog/(?P<slug>[-\w]+)/stream/?$"

websocket_routing = [
    route("websocket.connect", consumers.stream_connect),
    route("websocket.receive", consumers.stream_receive),
    route("websocket.disconnect", consumers.stream_disconnect),
]
