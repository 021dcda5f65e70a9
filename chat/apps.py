from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from channels1_kit import presence, sockets
        from chat import selectors, services
        from chat.models import ROOM_GROUP_PREFIX

        # A socket gone without a disconnect leaves its groups.
        sockets.register(
            "chat",
            groups=selectors.socket_group_names,
            # Rooms' groups were named by slug before they were by primary key.
            legacy_groups=selectors.legacy_group_names,
        )
        # Who is in each room: the kit's presence of the room's group. It tells the chat of the
        # people whose grace ran out, and the sweep drops the presence of rooms deleted.
        presence.register(
            "chat",
            prefix=ROOM_GROUP_PREFIX,
            announce=services.presence_announce,
            groups=selectors.room_group_names,
        )
