from channels.routing import route

from . import consumers

# Mounted by project/routing.py under ^/chat/stream/?$
websocket_routing = [
    route("websocket.connect", consumers.chat_connect),
    route("websocket.receive", consumers.chat_receive),
    route("websocket.disconnect", consumers.chat_disconnect),
]
