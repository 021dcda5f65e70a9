"""The worker pool's health probe: the consumer every worker runs, and the channel it listens on.

`manage.py worker_health` sends a probe there and waits for the answer; the kit adds the route
to every runworker (channels1_kit/apps.py), so a site's routing need not name it.
"""

import os
import socket
import time

from django.db import connection

from channels1_kit.conf import setting


def channel() -> str:
    """The channel `manage.py worker_health` asks on (CHANNELS1_KIT_HEALTH_CHANNEL)."""
    return setting("HEALTH_CHANNEL")


def worker_health(message) -> None:
    """Answers a health probe, after checking this worker's database connection.

    A worker whose database is gone still takes messages off Redis and fails every one, so
    it answers "ok": false with the error rather than looking healthy.
    """
    if message.reply_channel is None:
        return
    reply = {"pid": os.getpid(), "host": socket.gethostname(), "asked": message.content.get("asked")}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # Any database failure is the answer, not a worker crash.
        reply.update(ok=False, error=f"database: {error}")
    else:
        reply["ok"] = True
    reply["answered"] = time.time()
    message.reply_channel.send(reply)


def route_health(router) -> None:
    """Adds the health consumer to a channels Router, unless the site routed the channel itself."""
    from channels.routing import route

    if channel() not in router.channels:
        router.add_route(route(channel(), worker_health))
