from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Site"

    def ready(self):
        from channels.signals import worker_process_ready

        from project.workers import stop_after_message_in_hand

        worker_process_ready.connect(stop_after_message_in_hand, dispatch_uid="project.workers.stop")
        # Survive a Redis outage (project/outages.py) and sweep gone sockets (project/sockets.py).
        from project.outages import tolerate_redis_outages
        from project.sockets import start_sweeper

        worker_process_ready.connect(tolerate_redis_outages, dispatch_uid="project.outages.tolerate")
        worker_process_ready.connect(start_sweeper, dispatch_uid="project.sockets.sweeper")
