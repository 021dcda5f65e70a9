from typing import List, NamedTuple, Tuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from channels1_kit.websocket import ClientError

from . import conf
from .models import LOBBY_GROUP, Message, Presence, Room

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


def room_member_count(*, room: Room) -> int:
    """People, not sockets: a user with two tabs open counts once."""
    return Presence.objects.filter(room=room).values("user").distinct().count()


class RoomCounts(NamedTuple):
    members: int
    user_sockets: int


def room_counts(*, room: Room, user: User) -> RoomCounts:
    """How many people are in the room (room_member_count), and how many of one user's sockets,
    in one query: a join and a leave need both."""
    counts = Presence.objects.filter(room=room).aggregate(
        members=Count("user", distinct=True), user_sockets=Count("pk", filter=Q(user=user))
    )
    return RoomCounts(members=counts["members"], user_sockets=counts["user_sockets"])


def room_member_counts(*, rooms: List[Room]) -> dict:
    return {room.slug: room_member_count(room=room) for room in rooms}


def message_history(*, room: Room, limit: int = conf.HISTORY_LENGTH) -> List[Message]:
    """The newest messages, oldest first."""
    newest = room.messages.select_related("user", "room").order_by("-id")[:limit]
    return list(reversed(newest))


def message_list_since(*, room: Room, since_id: int, limit: int = conf.CATCH_UP_LIMIT) -> List[Message]:
    return list(room.messages.select_related("user", "room").filter(id__gt=since_id).order_by("id")[:limit])


def presence_rooms_for_channel(*, reply_channel: str) -> List[Room]:
    return [presence.room for presence in Presence.objects.filter(reply_channel=reply_channel).select_related("room")]


def presence_sockets() -> List[Tuple[str, float]]:
    """Every socket some room counts, with when it joined first (a timestamp)."""
    first_joined: dict = {}
    for reply_channel, joined in Presence.objects.values_list("reply_channel", "joined"):
        first_joined[reply_channel] = min(joined.timestamp(), first_joined.get(reply_channel, joined.timestamp()))
    return sorted(first_joined.items())


def socket_group_names() -> List[str]:
    """Every channel-layer group the chat puts sockets in: the lobby and each room's."""
    return [LOBBY_GROUP, *(room.group_name for room in Room.objects.only("pk"))]


def legacy_group_names() -> List[str]:
    """The group names rooms had before they were named by primary key: f"chat.{slug}". The kit
    closes sockets still in one of them with 4503 (manage.py close_legacy_groups), to rejoin."""
    names = (f"chat.{slug}" for slug in Room.objects.values_list("slug", flat=True))
    return [name for name in names if name != LOBBY_GROUP]


def rooms_existing(*, pks: List[int]) -> List[int]:
    """Those of `pks` that are still rooms, in the same order."""
    found = set(Room.objects.filter(pk__in=pks).values_list("pk", flat=True))
    return [pk for pk in pks if pk in found]
