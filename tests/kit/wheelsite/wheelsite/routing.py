from channels.routing import route
from posts import consumers as posts

from chat import consumers as chat

ROOM = r"^/chat/(?P<room>[a-z0-9-]+)/$"

channel_routing = [
    route("websocket.connect", chat.ws_connect, path=ROOM),
    route("websocket.receive", chat.ws_message, path=ROOM),
    route("websocket.disconnect", chat.ws_disconnect, path=ROOM),
    route("websocket.connect", posts.ws_connect, path=r"^/posts/$"),
    route("websocket.receive", posts.ws_message, path=r"^/posts/$"),
    route("websocket.disconnect", posts.ws_disconnect, path=r"^/posts/$"),
]
