import json

from channels import Group
from channels.sessions import channel_session

from chat.models import Presence
from chat.presence import group_name


@channel_session
def ws_connect(message, room):
    message.channel_session["room"] = room
    Group(group_name(room)).add(message.reply_channel)
    Presence.objects.create(room=room, reply_channel=message.reply_channel.name)
    message.reply_channel.send({"accept": True})
    message.reply_channel.send({"text": json.dumps({"joined": room})})


@channel_session
def ws_message(message, room):
    frame = json.loads(message.content["text"])
    if "say" in frame:
        Group(group_name(room)).send({"text": json.dumps({"said": frame["say"], "n": frame.get("n")})})
    else:
        message.reply_channel.send({"text": json.dumps({"echo": frame.get("n")})})


@channel_session
def ws_disconnect(message, room):
    Group(group_name(room)).discard(message.reply_channel)
    Presence.objects.filter(reply_channel=message.reply_channel.name).delete()
