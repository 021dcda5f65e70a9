from django.conf import settings
from django.db import models

# Every logged-in chat socket listens here for the member counts of the open rooms.
LOBBY_GROUP = "chat.lobby"


class Room(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    staff_only = models.BooleanField(default=False)
    # Bumped by every join and leave (services._lock_room): presence frames carry it as "seq",
    # so a page can tell a late count from a newer one.
    presence_seq = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        """The channel-layer group of every socket that joined this room. By primary key, so that
        renaming the slug keeps every socket in it (before: f"chat.{slug}", see
        selectors.legacy_group_names)."""
        return f"chat.room.{self.pk}"


class Message(models.Model):
    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="chat_messages", on_delete=models.CASCADE)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:60]


class Presence(models.Model):
    """One socket in one room. Kept in the database so that every worker counts the same people."""

    room = models.ForeignKey(Room, related_name="presences", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="chat_presences", on_delete=models.CASCADE)
    reply_channel = models.CharField(max_length=200)
    joined = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "reply_channel"], name="chat_presence_once_per_socket"),
        ]
        indexes = [models.Index(fields=["reply_channel"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.room}"
