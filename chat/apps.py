from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from channels1_kit import sockets
        from chat import selectors, services

        # A socket gone without a disconnect leaves its rooms (members are told) and its groups.
        sockets.register(
            "chat",
            groups=selectors.socket_group_names,
            sockets=selectors.presence_sockets,
            forget=services.presence_sweep,
            # Rooms' groups were named by slug before they were by primary key.
            legacy_groups=selectors.legacy_group_names,
        )
