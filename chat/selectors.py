from typing import Dict, List, NamedTuple, Optional

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from channels1_kit import presence
from channels1_kit.websocket import ClientError

from . import conf
from .models import LOBBY_GROUP, Message, Room

User = AbstractBaseUser


def rooms_visible_to(*, user: User) -> QuerySet:
    rooms = Room.objects.all()
    if not getattr(user, "is_staff", False):
        rooms = rooms.filter(staff_only=False)
    return rooms


def room_get_for_user(*, slug: object, user: User) -> Room:
    """The room a user may enter, or a ClientError saying why not."""
    if isinstance(user, AnonymousUser) or not user.is_authenticated:
        raise ClientError("login-required", "Log in to chat.")
    if not isinstance(slug, str) or not slug:
        raise ClientError("invalid-room", "room must be the slug of a room.")
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        raise ClientError("room-not-found", "There is no such room.")
    if room.staff_only and not user.is_staff:
        raise ClientError("room-forbidden", "This room is for staff only.")
    return room


class RoomCount(NamedTuple):
    """People in a room now, and the presence number of that count (higher is newer)."""

    members: int
    seq: int


def room_member_count(*, room: Room) -> int:
    """People, not sockets: a user with two tabs open counts once."""
    return presence.members(room.group_name)


def room_member_counts(*, rooms: List[Room]) -> Dict[str, RoomCount]:
    """Each room's count and its presence number, by slug: what the lobby page is rendered with."""
    state = presence.state(room.group_name for room in rooms)
    return {room.slug: RoomCount(*state[room.group_name]) for room in rooms}


def room_for_group(*, group: str) -> Optional[Room]:
    """The room whose channel-layer group this is (chat.room.<pk>), if it still exists."""
    pk = Room.pk_of_group(group)
    return None if pk is None else Room.objects.filter(pk=pk).first()


def room_group_names() -> List[str]:
    """The groups of the rooms that exist: presence kept for any other is dropped by the sweep."""
    return [room.group_name for room in Room.objects.only("pk")]


def username_of(*, user_pk: str) -> str:
    User = get_user_model()
    found = User.objects.filter(pk=user_pk).first()
    return found.get_username() if found is not None else ""


def message_history(*, room: Room, limit: int = conf.HISTORY_LENGTH) -> List[Message]:
    """The newest messages, oldest first."""
    newest = room.messages.select_related("user", "room").order_by("-id")[:limit]
    return list(reversed(newest))


def message_list_since(*, room: Room, since_id: int, limit: int = conf.CATCH_UP_LIMIT) -> List[Message]:
    return list(room.messages.select_related("user", "room").filter(id__gt=since_id).order_by("id")[:limit])


def socket_group_names() -> List[str]:
    """Every channel-layer group the chat puts sockets in: the lobby and each room's."""
    return [LOBBY_GROUP, *room_group_names()]


def legacy_group_names() -> List[str]:
    """The group names rooms had before they were named by primary key: f"chat.{slug}". The kit
    closes sockets still in one of them with 4503 (manage.py close_legacy_groups), to rejoin."""
    names = (f"chat.{slug}" for slug in Room.objects.values_list("slug", flat=True))
    return [name for name in names if name != LOBBY_GROUP]


def rooms_existing(*, pks: List[int]) -> List[int]:
    """Those of `pks` that are still rooms, in the same order."""
    found = set(Room.objects.filter(pk__in=pks).values_list("pk", flat=True))
    return [pk for pk in pks if pk in found]
