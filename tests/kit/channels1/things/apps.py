from django.apps import AppConfig


class ThingsConfig(AppConfig):
    name = "tests.kit.channels1.things"
    label = "things"

    def ready(self):
        # A binding sends only from the processes that imported it: every process that saves a
        # Thing (a worker, a manage.py shell, a WSGI server) must, as Channels 1's docs say.
        from tests.kit.channels1 import bindings  # noqa: F401
