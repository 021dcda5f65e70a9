"""Every frame the chat stream sends, built in one place (the README documents them)."""

from typing import Iterable

from .models import Room
from .selectors import MessageView

JOINED = "joined"
LEFT = "left"
MESSAGE = "message"
PRESENCE = "presence"
ROOM_DELETED = "room.deleted"
ROOM_RENAMED = "room.renamed"


def message_payload(*, room: Room, message: MessageView) -> dict:
    return {
        "type": MESSAGE,
        "room": room.slug,
        "id": message.id,
        "username": message.username,
        "message": message.text,
        "created": message.created.isoformat(),
    }


def presence_notice(*, kind: str, room: Room, username: str, members: int, seq: int) -> dict:
    """`seq` is the room's presence_seq right after this change: higher is newer."""
    return {"type": kind, "room": room.slug, "username": username, "members": members, "seq": seq}


def join_reply(*, room: Room, members: int, seq: int, messages: Iterable[MessageView]) -> dict:
    return {
        "join": room.slug,
        "title": room.title,
        "members": members,
        "seq": seq,
        "messages": [message_payload(room=room, message=message) for message in messages],
    }


def leave_reply(*, room: Room) -> dict:
    return {"leave": room.slug}


def history_reply(*, room: Room, messages: Iterable[MessageView]) -> dict:
    return {"history": room.slug, "messages": [message_payload(room=room, message=message) for message in messages]}


def presence_count(*, room: Room, members: int, seq: int) -> dict:
    return {"type": PRESENCE, "room": room.slug, "members": members, "seq": seq}


def room_deleted_notice(*, slug: str) -> dict:
    """To the members of a room deleted in the admin."""
    return {"type": ROOM_DELETED, "room": slug, "message": "This room was deleted."}


def room_deleted_count(*, slug: str) -> dict:
    """To the lobby, for a room that was not staff-only."""
    return {"type": ROOM_DELETED, "room": slug}


def room_renamed(*, old_slug: str, room: Room) -> dict:
    """To the lobby (or a staff-only room's members): the room `old_slug` is now called `slug`."""
    return {"type": ROOM_RENAMED, "room": old_slug, "slug": room.slug, "title": room.title}
