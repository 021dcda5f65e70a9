import json

from channels import Group

from posts.models import Post


def ws_connect(message):
    Group("posts").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_message(message):
    Post.objects.create(title=json.loads(message.content["text"])["publish"])


def ws_disconnect(message):
    Group("posts").discard(message.reply_channel)
