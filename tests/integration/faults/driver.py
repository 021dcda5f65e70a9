"""A Django process beside the stack, driven over stdin/stdout: the tests' publisher and inspector.

Run as `python -m tests.integration.faults.driver` with the stack's environment. Each line
in is a JSON command, each line out its JSON answer. It saves through the apps' services,
as the admin and the workers do, so a save while Redis is down runs the same code.
"""

import json
import sys
import traceback


def main() -> None:
    import django

    django.setup()

    from channels import DEFAULT_CHANNEL_LAYER, channel_layers
    from django.contrib.auth.models import Permission, User

    from channels1_kit import presence, sockets
    from chat import services as chat_services
    from chat.models import LOBBY_GROUP, Message, Room
    from liveblog import services as liveblog_services
    from liveblog.models import Liveblog, Post

    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer

    def create_user(username: str, password: str, staff: bool = False, publisher: bool = False):
        user = User.objects.create_user(username, password=password, is_staff=staff)
        if publisher:
            codenames = ["add_post", "change_post", "view_post"]
            perms = Permission.objects.filter(content_type__app_label="liveblog", codename__in=codenames)
            user.user_permissions.add(*perms)
        return user.id

    def post(slug: str, body: str):
        return liveblog_services.post_create(liveblog=Liveblog.objects.get(slug=slug), body=body).id

    def say(room: str, username: str, text: str):
        user = User.objects.get(username=username)
        return chat_services.message_send(room=Room.objects.get(slug=room), user=user, text=text).id

    def daphnes():
        """The daphne processes that have written a socket snapshot lately, and their sockets."""
        redis = layer.connection(0)
        found = {}
        for key in redis.scan_iter(match=f"{layer.prefix}:sockets:*"):
            daphne = key.decode("utf8").split(":sockets:", 1)[1]
            found[daphne] = json.loads(redis.get(key) or "{}").get("sockets", [])
        return found

    def members(group: str):
        return [channel for channel, _ in sockets.group_members(layer, group)]

    def room_presence(room: str):
        """The sockets the room's presence counts (channels1_kit.presence, in the stack's Redis)."""
        return sorted(presence.sockets_in(Room.objects.get(slug=room).group_name))

    commands = {
        "create_user": create_user,
        "create_liveblog": lambda slug: liveblog_services.liveblog_create(title=slug.title(), slug=slug).slug,
        "create_room": lambda slug, staff_only=False: chat_services.room_create(
            title=slug.title(), slug=slug, staff_only=staff_only
        ).slug,
        "post": post,
        "say": say,
        "liveblog_id": lambda slug: Liveblog.objects.get(slug=slug).id,
        "post_ids": lambda slug: list(
            Post.objects.filter(liveblog__slug=slug).order_by("id").values_list("id", flat=True)
        ),
        "post_bodies": lambda slug: dict(Post.objects.filter(liveblog__slug=slug).values_list("id", "body")),
        "message_ids": lambda room: list(
            Message.objects.filter(room__slug=room).order_by("id").values_list("id", flat=True)
        ),
        "messages": lambda room: list(
            Message.objects.filter(room__slug=room).order_by("id").values_list("id", "user__username", "text")
        ),
        "presence": room_presence,
        "members": members,
        "lobby": lambda: members(LOBBY_GROUP),
        "room_members": lambda room: members(Room.objects.get(slug=room).group_name),
        "liveblog_members": lambda slug: members(Liveblog.objects.get(slug=slug).group_name),
        "daphnes": daphnes,
        "backlog": lambda channel: layer.channel_statistics(channel)["messages_pending"],
        "sweep": lambda: sockets.sweep(layer).as_dict(),
        "counts": lambda: {
            "posts": Post.objects.count(),
            "messages": Message.objects.count(),
            "presences": len(presence.all_sockets()),
            "users": User.objects.count(),
        },
    }
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = {"ok": commands[request["command"]](*request.get("args", []), **request.get("kwargs", {}))}
        except Exception as error:
            result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
