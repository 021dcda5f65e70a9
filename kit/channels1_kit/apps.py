"""`"channels1_kit"` in INSTALLED_APPS: the worker's side of the kit, with nothing else to name.

Every `manage.py runworker` then, through channels' worker_process_ready signal:

* serves the health channel (channels1_kit/health.py) beside the site's own routing;
* finishes the message in hand on SIGTERM (channels1_kit/workers.py), CHANNELS1_KIT_GRACEFUL_STOP;
* waits out a Redis outage instead of exiting (channels1_kit/outages.py), CHANNELS1_KIT_WAIT_FOR_REDIS;
* sweeps gone sockets every CHANNELS1_KIT_SWEEP_SECONDS (channels1_kit/sockets.py);
* takes people whose presence grace ran out out of their groups, every second, and tells their
  app (channels1_kit/presence.py), where an app registered presence;
* deletes a socket's channel session once its websocket.disconnect has run, and drops (and
  counts) replies to the sockets of a dead daphne instead of failing on them (channels1_kit/gone.py).

It also brings the management commands channel_report, worker_health and sweep_sockets, and
refuses, at start, a kit setting it cannot use (channels1_kit/conf.py).
"""

from django.apps import AppConfig


class Channels1KitConfig(AppConfig):
    name = "channels1_kit"
    verbose_name = "Channels 1 kit"

    def ready(self):
        from channels.signals import worker_process_ready

        from channels1_kit import conf

        conf.check()
        worker_process_ready.connect(prepare_worker, dispatch_uid="channels1_kit.worker")


def prepare_worker(sender, **kwargs) -> None:
    """worker_process_ready receiver: everything the kit does to a runworker (sender) before it runs."""
    from channels1_kit import gone, health, outages, presence, sockets, workers
    from channels1_kit.conf import setting

    # Before the layer is wrapped, and before Worker.run() reads the router's channels.
    health.route_health(sender.channel_layer.router)
    if setting("GRACEFUL_STOP"):
        workers.stop_after_message_in_hand(sender)
    if setting("WAIT_FOR_REDIS"):
        outages.tolerate_redis_outages(sender)
    gone.drop_replies_to_gone_sockets(sender)
    sockets.start_sweeper(sender)
    presence.start_reaper(sender)
