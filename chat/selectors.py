import datetime
import functools
from typing import Dict, List, NamedTuple, Optional, Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from channels1_kit import presence, statements
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
    room = _room_by_slug(slug)
    if room is None:
        raise ClientError("room-not-found", "There is no such room.")
    if room.staff_only and not user.is_staff:
        raise ClientError("room-forbidden", "This room is for staff only.")
    return room


# Every join reads its room, checks it still exists after the join and reads the room's history:
# three queries that the ORM took longer to build (about 850 us in all, 40% of a worker's time for
# a join in a crowd's burst) than the database took to answer. So they are plain statements
# (channels1_kit.statements), written once per process.


class _Statements(NamedTuple):
    room: str
    room_exists: str
    newest: str
    since: str
    room_columns: statements.Columns
    message_columns: statements.Columns


@functools.cache
def _statements() -> _Statements:
    quote = connection.ops.quote_name
    room, message, author = Room._meta, Message._meta, get_user_model()._meta

    def column(meta, name: str) -> str:
        return f"{quote(meta.db_table)}.{quote(meta.get_field(name).column)}"

    # Every field of a room, in the model's order (Room.from_db takes them so).
    room_columns = statements.columns(room.concrete_fields, connection=connection)
    username = author.get_field(get_user_model().USERNAME_FIELD)
    message_columns = statements.columns(
        [*(message.get_field(name) for name in ("id", "text", "created")), username], connection=connection
    )
    messages = (
        f"SELECT {message_columns.sql} FROM {quote(message.db_table)} INNER JOIN {quote(author.db_table)} "
        f"ON {column(message, 'user')} = {quote(author.db_table)}.{quote(author.pk.column)} "
        f"WHERE {column(message, 'room')} = %s"
    )
    return _Statements(
        room=f"SELECT {room_columns.sql} FROM {quote(room.db_table)} WHERE {column(room, 'slug')} = %s",
        room_exists=f"SELECT 1 FROM {quote(room.db_table)} WHERE {column(room, 'id')} = %s",
        newest=f"{messages} ORDER BY {column(message, 'id')} DESC LIMIT %s",
        since=f"{messages} AND {column(message, 'id')} > %s ORDER BY {column(message, 'id')} LIMIT %s",
        room_columns=room_columns,
        message_columns=message_columns,
    )


def _rows(sql: str, params: Sequence) -> List[tuple]:
    return statements.rows(sql, params, connection=connection)


def _room_by_slug(slug: str) -> Optional[Room]:
    sql = _statements()
    rows = _rows(sql.room, [slug])
    if not rows:
        return None
    fields = [field.attname for field in Room._meta.concrete_fields]
    return Room.from_db(connection.alias, fields, sql.room_columns.convert(rows[0], connection))


def room_exists(*, pk: int) -> bool:
    return bool(_rows(_statements().room_exists, [pk]))


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


class MessageView(NamedTuple):
    """A message as its frames show it (chat.frames.message_payload), in the order of its statement's columns."""

    id: int
    text: str
    created: datetime.datetime
    username: str


def message_view(message: Message) -> MessageView:
    return MessageView(id=message.id, text=message.text, created=message.created, username=message.user.get_username())


def _message_views(rows: List[tuple]) -> List[MessageView]:
    convert = _statements().message_columns.convert
    return [MessageView(*convert(row, connection)) for row in rows]


def message_history(*, room: Room, limit: int = conf.HISTORY_LENGTH) -> List[MessageView]:
    """The newest messages, oldest first."""
    return _message_views(_rows(_statements().newest, [room.pk, limit])[::-1])


def message_list_since(*, room: Room, since_id: int, limit: int = conf.CATCH_UP_LIMIT) -> List[MessageView]:
    return _message_views(_rows(_statements().since, [room.pk, since_id, limit]))


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
