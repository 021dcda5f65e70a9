"""The chat stream: join and send as on the site, every member gets {"type": "message", ...}."""

import itertools
import json
from datetime import UTC, datetime

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Ids of messages, per process; the site's come from its database.
_ids = itertools.count(1)


def group_name(room: str) -> str:
    return f"chat.{room}"


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.rooms = set()
        await self.accept()

    async def receive_json(self, content, **kwargs):
        command, room = content.get("command"), content.get("room")
        if not isinstance(room, str) or not room:
            await self.send_json({"error": "invalid-room", "message": "room must be the slug of a room."})
        elif command == "join":
            await self.channel_layer.group_add(group_name(room), self.channel_name)
            self.rooms.add(room)
            await self.send_json({"join": room, "title": room, "members": 0, "messages": []})
        elif command == "send" and room in self.rooms:
            message = {
                "type": "message",
                "room": room,
                "id": next(_ids),
                "username": "peer",
                "message": str(content.get("message", "")),
                "created": datetime.now(UTC).isoformat(),
            }
            await self.channel_layer.group_send(group_name(room), {"type": "chat.message", "message": message})
        else:
            await self.send_json({"error": "invalid-command", "message": "join a room, then send to it."})

    async def chat_message(self, event):
        await self.send_json(event["message"])

    async def disconnect(self, code):
        for room in self.rooms:
            await self.channel_layer.group_discard(group_name(room), self.channel_name)

    @classmethod
    async def encode_json(cls, content):
        # The site's frames are compact JSON; so are these, for the same bytes on the wire.
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False)
