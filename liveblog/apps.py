from django.apps import AppConfig


class LiveblogConfig(AppConfig):
    name = "liveblog"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from channels1_kit import sockets, streams
        from liveblog import consumers, frames, routing, selectors
        from liveblog.models import STREAM, Liveblog

        # A stream gone without a disconnect leaves its liveblog's group; one still in a
        # group of the slug-based names of old is closed with 4503 and reconnects.
        sockets.register(
            "liveblog", groups=selectors.liveblog_group_names, legacy_groups=selectors.liveblog_legacy_group_names
        )
        # This process's disconnects look a slug up afresh once its liveblog is saved or deleted
        # (other workers' entries last GROUP_NAME_SECONDS at most).
        post_save.connect(consumers.forget_group_names, sender=Liveblog, dispatch_uid="liveblog-group-names-saved")
        post_delete.connect(consumers.forget_group_names, sender=Liveblog, dispatch_uid="liveblog-group-names-deleted")
        # A page reconnecting with `since` within the liveblog's last changes is accepted and
        # caught up by its daphne, with no worker (services publish each change).
        streams.register(STREAM, path=routing.STREAM_PATH, key="slug", since="since", synced=frames.liveblog_synced)
