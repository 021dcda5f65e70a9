"""Writes to the chat. Broadcasts go out after the transaction commits.

Who is in a room is the kit's presence of the room's group (channels1_kit.presence, in the
layer's Redis): a join or a leave is one Redis script, with no database write and no lock on
the room, so a crowd's joins go on side by side. The database keeps what must outlive Redis:
rooms and messages.
"""

import logging
from typing import List, NamedTuple, Optional

from channels import Group
from django.db import transaction

from channels1_kit import presence
from channels1_kit.websocket import ClientError, broadcast_on_commit

from . import conf, frames, selectors
from .models import LOBBY_GROUP, Message, Room
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


class Joined(NamedTuple):
    members: int
    seq: int


def _announce_change(room: Room, change: presence.Change, *, username: Optional[str] = None) -> None:
    """Tells the room (and the lobby) of a change in who is present, if the people changed."""
    if change.announce is None:
        return
    if username is None:
        username = selectors.username_of(user_pk=change.user)
    kind = frames.JOINED if change.announce == presence.JOINED else frames.LEFT
    notice = frames.presence_notice(kind=kind, room=room, username=username, members=change.members, seq=change.seq)
    _announce_presence(room, notice)


def room_join(*, room: Room, user: User, reply_channel: str) -> Joined:
    """Puts the socket in the room; returns how many people are in it now, and the seq.

    A room deleted between the caller's read and this join is refused (room-not-found) and keeps
    no one. Checked after the join: a delete that commits later forgets this join with the
    room's presence (room_delete), and the sweep drops whatever a race leaves of it."""
    # In the group before the count is taken: a change counted after this join's (a higher seq)
    # is announced to the group, so this socket hears it, before or after its reply (the page
    # shows the newest seq). Added after, it could miss the room's last change and show an
    # old count until the next.
    group = Group(room.group_name)
    group.add(reply_channel)
    try:
        change = presence.join(room.group_name, socket=reply_channel, user=str(user.pk))
    except Exception:
        group.discard(reply_channel)
        raise
    if not selectors.room_exists(pk=room.pk):
        presence.leave(room.group_name, socket=reply_channel)
        group.discard(reply_channel)
        raise ClientError("room-not-found", "There is no such room.")
    # Counts are of people: another tab of someone already here, or someone back within their
    # grace, changes nothing to announce.
    _announce_change(room, change, username=user.get_username())
    return Joined(members=change.members, seq=change.seq)


def room_leave(*, room: Room, reply_channel: str, user: Optional[User] = None) -> None:
    """The socket leaves because its person asked to: if it was their last socket here, the room
    hears at once that they left."""
    change = presence.leave(room.group_name, socket=reply_channel)
    Group(room.group_name).discard(reply_channel)
    if change is not None:
        _announce_change(room, change, username=user.get_username() if user is not None else None)


def socket_leave_all(*, reply_channel: str) -> List[str]:
    """On disconnect: the socket leaves every room it was in. A person whose last socket it was
    stays counted for the kit's grace (a page reconnecting is no leave); the reaper announces
    those who do not come back (presence_announce). Returns the rooms' groups."""
    groups = []
    for change in presence.disconnect(reply_channel):
        Group(change.group).discard(reply_channel)
        groups.append(change.group)
        if change.announce is not None:
            room = selectors.room_for_group(group=change.group)
            if room is not None:
                _announce_change(room, change)
    return groups


def presence_announce(change: presence.Change) -> None:
    """The kit's call when a person's grace ran out (channels1_kit.presence.register, chat.apps)."""
    room = selectors.room_for_group(group=change.group)
    if room is not None:
        _announce_change(room, change)


@transaction.atomic
def message_send(*, room: Room, user: User, text: object) -> Message:
    message = Message.objects.create(room=room, user=user, text=_clean_text(text))
    _broadcast_on_commit(room, frames.message_payload(room=room, message=selectors.message_view(message)))
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
    """Deletes the room with its messages (the admin's delete). After the commit its members are
    told, its presence is forgotten and they are taken out of its group, and the lobby hears it
    is gone."""
    slug, group, staff_only = room.slug, room.group_name, room.staff_only
    with transaction.atomic():
        if not Room.objects.filter(pk=room.pk).exists():
            return
        room.delete()
        broadcast_on_commit(group, frames.room_deleted_notice(slug=slug))

        def empty_group() -> None:
            try:
                channels = presence.drop_group(group)
            except Exception:
                # Redis down: the sweep drops the presence of a room that no longer exists.
                logger.exception("could not forget the presence of %s", group)
                return
            for channel in channels:
                try:
                    Group(group).discard(channel)
                except Exception:
                    # Redis down: the sweep takes gone sockets out; nothing is sent to the group any more.
                    logger.exception("could not take %s out of %s", channel, group)

        transaction.on_commit(empty_group)
        if not staff_only:
            broadcast_on_commit(LOBBY_GROUP, frames.room_deleted_count(slug=slug))
