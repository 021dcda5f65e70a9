from typing import Optional

from django.conf import settings
from django.db import models

# Every logged-in chat socket listens here for the member counts of the open rooms.
LOBBY_GROUP = "chat.lobby"
# Each room's group is this and its primary key (Room.group_name).
ROOM_GROUP_PREFIX = "chat.room."


class Room(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    staff_only = models.BooleanField(default=False)
    # Who is in the room, and the presence number its frames carry as "seq", are not here: they
    # are the kit's presence of the room's group (channels1_kit.presence), in the layer's Redis.

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        """The channel-layer group of every socket that joined this room. By primary key, so that
        renaming the slug keeps every socket in it (before: f"chat.{slug}", see
        selectors.legacy_group_names)."""
        return f"{ROOM_GROUP_PREFIX}{self.pk}"

    @staticmethod
    def pk_of_group(group: str) -> Optional[int]:
        """The primary key in a room's group name, or None if `group` is not one."""
        pk = group.removeprefix(ROOM_GROUP_PREFIX)
        return int(pk) if group.startswith(ROOM_GROUP_PREFIX) and pk.isdigit() else None


class Message(models.Model):
    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="chat_messages", on_delete=models.CASCADE)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:60]
