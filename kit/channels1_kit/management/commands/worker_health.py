"""Health check for the runworker pool: exits 0 when a worker answered a probe, 1 when none did.

It sends one message on the health channel (CHANNELS1_KIT_HEALTH_CHANNEL, `worker.health`)
and waits for the reply, so it checks what a load balancer's HTTP check cannot: that some
worker takes messages off the channel layer, runs a consumer, can reach the database, and
gets its answer back through Redis.

    python manage.py worker_health --timeout 10
"""

import time

from django.core.management.base import BaseCommand, CommandError

from channels1_kit import health
from channels1_kit.conf import channel_layer
from channels1_kit.management import redis_errors_said_plainly


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")

    @redis_errors_said_plainly
    def handle(self, *args, timeout: float, **options):
        layer = channel_layer()
        probe_channel = health.channel()
        # A single-reader channel of its own: the answer can only come back here.
        reply_channel = layer.new_channel(probe_channel + ".reply?")
        asked = time.time()
        try:
            layer.send(probe_channel, {"reply_channel": reply_channel, "asked": asked})
        except layer.ChannelFull:
            raise CommandError(f"{probe_channel} is full: the workers are not draining it")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Polled rather than blocking, which would wait up to 5 s past the deadline.
            channel, reply = layer.receive([reply_channel], block=False)
            if reply is None:
                time.sleep(0.05)
                continue
            took = (time.time() - asked) * 1000
            if not reply.get("ok"):
                raise CommandError(f"worker {reply['pid']} on {reply['host']} is unhealthy: {reply.get('error')}")
            self.stdout.write(f"ok: worker {reply['pid']} on {reply['host']} answered in {took:.0f} ms")
            return
        backlog = layer.channel_statistics(probe_channel)["messages_pending"]
        raise CommandError(
            f"no worker answered on {probe_channel} within {timeout:g}s ({backlog} probe(s) waiting there)"
        )
