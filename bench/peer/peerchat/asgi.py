"""daphne's entry point: `daphne peerchat.asgi:application` with REDIS_URL set."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerchat.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from peerchat.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter({"websocket": URLRouter([path("chat/stream/", ChatConsumer.as_asgi())])})
