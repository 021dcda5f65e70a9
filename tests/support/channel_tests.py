"""Consumer unit tests without processes: channels' in-memory layer and a WSClient bound to one stream."""

import json
from typing import List, Optional

from channels.test import WSClient

# Settings for the unit tests: ChannelTestCase swaps the layer for an in-memory one in
# any case; this keeps a test from ever building the Redis layer the settings name.
IN_MEMORY_LAYERS = {
    "default": {
        "BACKEND": "asgiref.inmemory.ChannelLayer",
        "ROUTING": "project.routing.channel_routing",
    },
}


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


# What a browser sends on a page of the site: the consumers refuse other origins.
SITE_ORIGIN = "http://localhost"


class StreamClient(WSClient):
    """One WebSocket on one path: each frame goes through the project routing to its consumer, as
    daphne and a worker would do, numbered with "order" as daphne numbers them.

    Its handshake carries `origin` (the site's own by default; None sends no Origin header),
    in daphne's header format: a list of [name, value] byte pairs."""

    def __init__(self, path: str, *, origin: Optional[str] = SITE_ORIGIN, **kwargs):
        super().__init__(ordered=True, **kwargs)
        self.path = path
        self.origin = origin

    def handshake_headers(self) -> list:
        headers = [[_bytes(name), _bytes(value)] for name, value in self.headers.items()]
        if self.origin is not None:
            headers.append([b"origin", self.origin.encode("latin-1")])
        return headers

    def connect(self, *, check_accept: bool = True) -> None:
        """Fails unless the consumer accepted, when check_accept (see next_content otherwise)."""
        self.send_and_consume(
            "websocket.connect", {"headers": self.handshake_headers()}, path=self.path, check_accept=check_accept
        )

    def send_json(self, payload) -> None:
        self.send_text(json.dumps(payload))

    def send_text(self, text: str) -> None:
        self.send_and_consume("websocket.receive", {"text": text}, path=self.path)

    def send_bytes(self, data: bytes) -> None:
        self.send_and_consume("websocket.receive", {"bytes": data}, path=self.path)

    def disconnect(self, code: int = 1000) -> None:
        self.send_and_consume("websocket.disconnect", {"code": code}, path=self.path)

    def next_content(self) -> Optional[dict]:
        """The next message daphne would get for this socket, undecoded (text, close...)."""
        message = self.get_next_message(self.reply_channel)
        return message.content if message else None

    def frames(self) -> List[dict]:
        """Every JSON frame waiting for this socket, oldest first; empties the queue."""
        frames = []
        while True:
            content = self.next_content()
            if content is None:
                return frames
            assert "text" in content, f"expected a text frame, got {content}"
            frames.append(json.loads(content["text"]))

    def frame(self) -> dict:
        """The one frame waiting for this socket; fails if there are none or several."""
        frames = self.frames()
        assert len(frames) == 1, f"expected exactly one frame, got {frames}"
        return frames[0]
