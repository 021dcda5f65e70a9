"""Consumers of the site's own channels, beside the apps' WebSocket ones."""

import os
import socket
import time

from django.db import connection

# The channel `manage.py worker_health` asks on; every worker pool must listen on it.
HEALTH_CHANNEL = "worker.health"


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
