"""Writes to the chat. Broadcasts go out after the transaction commits."""

from typing import Callable, List

from channels import Group
from django.db import transaction
from django.db.models import F

from channels1_kit.websocket import ClientError, broadcast_on_commit

from . import conf, frames, selectors
from .models import LOBBY_GROUP, Message, Presence, Room
from .selectors import User


def _broadcast_on_commit(room: Room, payload: dict) -> None:
    # A broadcast that fails (Redis down) is logged, never the save's failure: the members
    # get what they missed with `since` when they reconnect.
    broadcast_on_commit(room.group_name, payload)


def _announce_presence(room: Room, notice: dict) -> None:
    _broadcast_on_commit(room, notice)
    # Staff-only rooms are not listed to everyone, so neither are their counts.
    if not room.staff_only:
        broadcast_on_commit(LOBBY_GROUP, frames.presence_count(room=room, members=notice["members"]))


def lobby_add(*, reply_channel: str) -> None:
    Group(LOBBY_GROUP).add(reply_channel)


def lobby_discard(*, reply_channel: str) -> None:
    Group(LOBBY_GROUP).discard(reply_channel)


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise ClientError("invalid-message", "message must be a string.")
    text = text.strip()
    if not text:
        raise ClientError("message-empty", "The message is empty.")
    if len(text) > conf.MESSAGE_MAX_LENGTH:
        raise ClientError("message-too-long", f"Messages are at most {conf.MESSAGE_MAX_LENGTH} characters.")
    return text


def _lock_room(room: Room) -> None:
    """Membership changes of one room run one at a time across workers, so that the count a
    notice carries is the count right after its own change, not a guess made beside another.

    An UPDATE rather than select_for_update because SQLite ignores the latter: as the first
    statement of the transaction it takes SQLite's write lock before any read, where a read
    first lets two workers deadlock upgrading their locks and one fail at once with
    "database is locked", its busy timeout unused. On PostgreSQL it locks the room's row.
    """
    Room.objects.filter(pk=room.pk).update(slug=F("slug"))


@transaction.atomic
def room_join(*, room: Room, user: User, reply_channel: str) -> int:
    """Puts the socket in the room; returns how many people are in it now."""
    _lock_room(room)
    _, created = Presence.objects.get_or_create(room=room, reply_channel=reply_channel, defaults={"user": user})
    Group(room.group_name).add(reply_channel)
    members = selectors.room_member_count(room=room)
    # Counts are of people: another tab of someone already here changes nothing to announce.
    if created and selectors.room_socket_count(room=room, user=user) == 1:
        notice = frames.presence_notice(kind=frames.JOINED, room=room, username=user.get_username(), members=members)
        _announce_presence(room, notice)
    return members


@transaction.atomic
def room_leave(*, room: Room, reply_channel: str) -> None:
    _lock_room(room)
    presence = Presence.objects.filter(room=room, reply_channel=reply_channel).select_related("user").first()
    Group(room.group_name).discard(reply_channel)
    if presence is None:
        return
    presence.delete()
    # Closing one of two tabs is no departure: the person is still in the room.
    if selectors.room_socket_count(room=room, user=presence.user):
        return
    members = selectors.room_member_count(room=room)
    username = presence.user.get_username()
    _announce_presence(room, frames.presence_notice(kind=frames.LEFT, room=room, username=username, members=members))


def socket_leave_all(*, reply_channel: str) -> List[Room]:
    """On disconnect: leaves every room the socket was in, as the database records it."""
    rooms = selectors.presence_rooms_for_channel(reply_channel=reply_channel)
    for room in rooms:
        room_leave(room=room, reply_channel=reply_channel)
    return rooms


def presence_sweep(*, gone: Callable[[str, float], bool]) -> int:
    """Leaves every room for each socket that `gone(reply_channel, joined)` says is gone
    (channels1_kit/sockets.py); the rooms hear that its person left, if it was their last socket.
    Returns how many presences it removed."""
    removed = 0
    for reply_channel, joined in selectors.presence_sockets():
        if gone(reply_channel, joined):
            removed += len(socket_leave_all(reply_channel=reply_channel))
    return removed


@transaction.atomic
def message_send(*, room: Room, user: User, text: object) -> Message:
    message = Message.objects.create(room=room, user=user, text=_clean_text(text))
    _broadcast_on_commit(room, frames.message_payload(message))
    return message


def room_create(*, title: str, slug: str, staff_only: bool = False) -> Room:
    return Room.objects.create(title=title, slug=slug, staff_only=staff_only)
