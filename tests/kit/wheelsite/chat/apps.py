from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from channels1_kit import sockets
        from chat import presence

        sockets.register("chat", groups=presence.groups, sockets=presence.sockets, forget=presence.forget)
