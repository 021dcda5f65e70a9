"""Plain function consumers: a named route with path kwargs (mounted with include), and the probe
that says which worker took a message of a non-websocket channel (for --only-channels)."""

import json
import os

from channels import Channel


def named_connect(message, name):
    message.reply_channel.send({"accept": True})


def named_receive(message, name):
    message.reply_channel.send({"text": json.dumps({"hello": name, "text": message["text"]})})


def probe(message):
    Channel(message["reply"]).send({"channel": message.channel.name, "worker": os.getpid()})
