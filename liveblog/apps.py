from django.apps import AppConfig


class LiveblogConfig(AppConfig):
    name = "liveblog"

    def ready(self):
        from channels1_kit import sockets
        from liveblog import selectors

        # A stream gone without a disconnect leaves its liveblog's group.
        sockets.register("liveblog", groups=selectors.liveblog_group_names)
