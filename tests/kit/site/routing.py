from channels.routing import route

from tests.kit.site.echo import consumers

ROOM_PATH = r"^/rooms/(?P<room>[a-z0-9-]+)/$"

# http.request is not routed: channels then hands it to Django's views (channels.handler.ViewConsumer).
channel_routing = [
    route("websocket.connect", consumers.echo_connect, path=r"^/echo/$"),
    route("websocket.receive", consumers.echo_receive, path=r"^/echo/$"),
    route("websocket.connect", consumers.room_connect, path=ROOM_PATH),
    route("websocket.receive", consumers.room_receive, path=ROOM_PATH),
    route("websocket.disconnect", consumers.room_disconnect, path=ROOM_PATH),
]
