from django.apps import AppConfig


class LiveblogConfig(AppConfig):
    name = "liveblog"

    def ready(self):
        from channels1_kit import sockets
        from liveblog import selectors

        # A stream gone without a disconnect leaves its liveblog's group; one still in a
        # group of the slug-based names of old is closed with 4503 and reconnects.
        sockets.register(
            "liveblog", groups=selectors.liveblog_group_names, legacy_groups=selectors.liveblog_legacy_group_names
        )
