"""What the kit's sweep needs to know about the chat (registered in ChatConfig.ready)."""

from channels import Group

from chat.models import Presence


def group_name(room):
    return f"chat-{room}"


def groups():
    return [group_name(room) for room in Presence.objects.values_list("room", flat=True).distinct()]


def sockets():
    rows = Presence.objects.values_list("reply_channel", "joined")
    return [(channel, joined.timestamp()) for channel, joined in rows]


def forget(*, gone):
    removed = 0
    for presence in list(Presence.objects.all()):
        if gone(presence.reply_channel, presence.joined.timestamp()):
            Group(group_name(presence.room)).discard(presence.reply_channel)
            presence.delete()
            removed += 1
    return removed
