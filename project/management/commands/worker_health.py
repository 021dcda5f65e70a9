"""Health check for the runworker pool: exits 0 when a worker answered a probe, 1 when none did.

It sends one message on the `worker.health` channel and waits for the reply, so it checks
what a load balancer's HTTP check cannot: that some worker takes messages off the channel
layer, runs a consumer, can reach the database, and gets its answer back through Redis.

    python manage.py worker_health --timeout 10
"""

import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.core.management.base import BaseCommand, CommandError

from project.consumers import HEALTH_CHANNEL


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")

    def handle(self, *args, timeout: float, **options):
        layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
        # A single-reader channel of its own: the answer can only come back here.
        reply_channel = layer.new_channel(HEALTH_CHANNEL + ".reply?")
        asked = time.time()
        try:
            layer.send(HEALTH_CHANNEL, {"reply_channel": reply_channel, "asked": asked})
        except layer.ChannelFull:
            raise CommandError(f"{HEALTH_CHANNEL} is full: the workers are not draining it")
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
        backlog = layer.channel_statistics(HEALTH_CHANNEL)["messages_pending"]
        raise CommandError(
            f"no worker answered on {HEALTH_CHANNEL} within {timeout:g}s ({backlog} probe(s) waiting there)"
        )
