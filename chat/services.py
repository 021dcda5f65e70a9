"""Writes to the chat. Broadcasts go out after the transaction commits."""

import logging
from typing import Callable, List, NamedTuple, Optional

from channels import Group
from django.db import transaction
from django.db.models import F

from channels1_kit.websocket import ClientError, broadcast_on_commit

from . import conf, frames, selectors
from .models import LOBBY_GROUP, Message, Presence, Room
from .selectors import User

logger = logging.getLogger(__name__)


def _broadcast_on_commit(room: Room, payload: dict) -> None:
    # A broadcast that fails (Redis down) is logged, never the save's failure: the members
    # get what they missed with `since` when they reconnect.
    broadcast_on_commit(room.group_name, payload)


def _announce_presence(room: Room, notice: dict) -> None:
    _broadcast_on_commit(room, notice)
    # Staff-only rooms are not listed to everyone, so neither are their counts.
    if not room.staff_only:
        count = frames.presence_count(room=room, members=notice["members"], seq=notice["seq"])
        broadcast_on_commit(LOBBY_GROUP, count)


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


def _lock_room(room: Room) -> Optional[int]:
    """Membership changes of one room run one at a time across workers, so that the count a
    notice carries is the count right after its own change, not a guess made beside another.
    Each change bumps the room's presence_seq; returns the new value (the "seq" of the frames
    about this change), or None if the room is gone.

    An UPDATE rather than select_for_update because SQLite ignores the latter: as the first
    statement of the transaction it takes SQLite's write lock before any read, where a read
    first lets two workers deadlock upgrading their locks and one fail at once with
    "database is locked", its busy timeout unused. On PostgreSQL it locks the room's row.
    """
    if not Room.objects.filter(pk=room.pk).update(presence_seq=F("presence_seq") + 1):
        return None
    seq = Room.objects.filter(pk=room.pk).values_list("presence_seq", flat=True).get()
    room.presence_seq = seq
    return seq


class Joined(NamedTuple):
    members: int
    seq: int


@transaction.atomic
def room_join(*, room: Room, user: User, reply_channel: str) -> Joined:
    """Puts the socket in the room; returns how many people are in it now, and the seq."""
    seq = _lock_room(room)
    if seq is None:
        raise ClientError("room-not-found", "There is no such room.")
    # No get_or_create: the room's lock keeps any other join of this socket out until the
    # commit, so the savepoint it would open around its INSERT buys nothing.
    created = not Presence.objects.filter(room=room, reply_channel=reply_channel).exists()
    if created:
        Presence.objects.create(room=room, user=user, reply_channel=reply_channel)
    Group(room.group_name).add(reply_channel)
    members, user_sockets = selectors.room_counts(room=room, user=user)
    # Counts are of people: another tab of someone already here changes nothing to announce.
    if created and user_sockets == 1:
        username = user.get_username()
        notice = frames.presence_notice(kind=frames.JOINED, room=room, username=username, members=members, seq=seq)
        _announce_presence(room, notice)
    return Joined(members=members, seq=seq)


@transaction.atomic
def room_leave(*, room: Room, reply_channel: str) -> None:
    seq = _lock_room(room)
    if seq is None:
        # Deleted meanwhile: its presences went with it.
        Group(room.group_name).discard(reply_channel)
        return
    presence = Presence.objects.filter(room=room, reply_channel=reply_channel).select_related("user").first()
    Group(room.group_name).discard(reply_channel)
    if presence is None:
        return
    presence.delete()
    members, user_sockets = selectors.room_counts(room=room, user=presence.user)
    # Closing one of two tabs is no departure: the person is still in the room.
    if user_sockets:
        return
    username = presence.user.get_username()
    notice = frames.presence_notice(kind=frames.LEFT, room=room, username=username, members=members, seq=seq)
    _announce_presence(room, notice)


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


@transaction.atomic
def room_update(*, room: Room, title: str, slug: str, staff_only: bool) -> Room:
    """The admin's edit. Members keep their sockets and groups (named by primary key); the pages
    are told the new slug, which every frame about the room carries from now on."""
    old_slug = Room.objects.values_list("slug", flat=True).get(pk=room.pk)
    room.title, room.slug, room.staff_only = title, slug, staff_only
    room.save(update_fields=["title", "slug", "staff_only"])
    notice = frames.room_renamed(old_slug=old_slug, room=room)
    # Every chat socket is in the lobby; a staff-only room is not shown there, so its members hear it.
    broadcast_on_commit(room.group_name if staff_only else LOBBY_GROUP, notice)
    return room


def room_delete(*, room: Room) -> None:
    """Deletes the room with its presences and messages (the admin's delete). After the commit
    its members are told and taken out of its group, and the lobby hears it is gone."""
    slug, group, staff_only = room.slug, room.group_name, room.staff_only
    with transaction.atomic():
        # First, as in joins and leaves: a join waits for the delete, then finds no room.
        if _lock_room(room) is None:
            return
        channels = list(Presence.objects.filter(room=room).values_list("reply_channel", flat=True))
        room.delete()
        broadcast_on_commit(group, frames.room_deleted_notice(slug=slug))

        def empty_group() -> None:
            for channel in channels:
                try:
                    Group(group).discard(channel)
                except Exception:
                    # Redis down: the sweep takes gone sockets out; nothing is sent to the group any more.
                    logger.exception("could not take %s out of %s", channel, group)

        transaction.on_commit(empty_group)
        if not staff_only:
            broadcast_on_commit(LOBBY_GROUP, frames.room_deleted_count(slug=slug))
