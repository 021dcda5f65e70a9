from channels.routing import route

from . import consumers

# Mounted by project/routing.py under ^/liveblog/(?P<slug>[-\w]+)/stream/?$
websocket_routing = [
    route("websocket.connect", consumers.stream_connect),
    route("websocket.receive", consumers.stream_receive),
    route("websocket.disconnect", consumers.stream_disconnect),
]
