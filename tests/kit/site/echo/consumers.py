"""Function consumers, as in the Channels 1 examples.

/echo/ answers each frame on its own socket and counts the frames in the channel session.
/rooms/<room>/ puts the socket in the room's Group: a frame with "say" goes to everyone in the
room; any other frame ({"seq": N}) is answered with what the channel session has seen so far.
"""

import json
import os

from channels import Group
from channels.sessions import channel_session, enforce_ordering

from channels1_kit.auth import channel_session_user, channel_session_user_from_http


def room_group(room: str) -> Group:
    return Group(f"room-{room}")


def send_json(channel, payload: dict) -> None:
    channel.send({"text": json.dumps(payload)})


def echo_connect(message) -> None:
    message.reply_channel.send({"accept": True})


@channel_session
def echo_receive(message) -> None:
    # The session outlives the frame: the next one may reach the other worker.
    frames = message.channel_session.get("frames", 0) + 1
    message.channel_session["frames"] = frames
    send_json(message.reply_channel, {"echo": message.content["text"], "frames": frames, "worker": os.getpid()})


@enforce_ordering
@channel_session_user_from_http
def room_connect(message, room: str) -> None:
    message.channel_session["room"] = room
    message.channel_session["seen"] = []
    room_group(room).add(message.reply_channel)
    message.reply_channel.send({"accept": True})
    send_json(message.reply_channel, {"hello": message.user.username, "room": room})


@enforce_ordering
@channel_session_user
def room_receive(message, room: str) -> None:
    frame = json.loads(message.content["text"])
    if "say" in frame:
        room_group(room).send({"text": json.dumps({"room": room, "said": frame["say"], "by": message.user.username})})
        return
    seen = message.channel_session["seen"] + [frame["seq"]]
    message.channel_session["seen"] = seen
    previous = seen[-2] if len(seen) > 1 else None
    send_json(
        message.reply_channel,
        {"seq": frame["seq"], "seen": len(seen), "previous": previous, "user": message.user.username},
    )


@enforce_ordering
@channel_session
def room_disconnect(message, room: str) -> None:
    room_group(message.channel_session["room"]).discard(message.reply_channel)
