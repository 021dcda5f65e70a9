from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Site"

    def ready(self):
        from channels.signals import worker_process_ready

        from project.workers import stop_after_message_in_hand

        worker_process_ready.connect(stop_after_message_in_hand, dispatch_uid="project.workers.stop")
