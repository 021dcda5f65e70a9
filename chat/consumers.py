"""The chat stream, /chat/stream/: JSON commands in, JSON frames out (see README)."""

import time

from channels.security.websockets import allowed_hosts_only
from channels.sessions import enforce_ordering

from channels1_kit import ratelimit
from channels1_kit.auth import channel_session_user, channel_session_user_from_http
from channels1_kit.websocket import (
    ClientError,
    accept,
    catch_client_error,
    close_if_stalled,
    decode_json_frame,
    parse_id,
    send_frame,
)

from . import conf, frames, selectors, services


def _since(payload: dict):
    since = payload.get("since")
    if since is None:
        return None
    # JSON integers only (not "5"), up to what the database can compare.
    if not isinstance(since, int) or parse_id(since) is None:
        raise ClientError("invalid-since", "since must be the id of the last message received.")
    return since


def _session_rooms(message) -> list:
    """The primary keys of the rooms this socket joined (by pk, not slug: a room renamed in the
    admin is still joined under its new slug). Anything else a session holds (the slugs of a
    session from before) counts for nothing."""
    rooms = message.channel_session.get("rooms", [])
    return [pk for pk in rooms if isinstance(pk, int) and not isinstance(pk, bool)]


def _set_session_rooms(message, rooms: list) -> None:
    """Stores the socket's rooms, less those deleted since it joined them (silently: a send to
    one of those slugs now answers room-not-found)."""
    message.channel_session["rooms"] = selectors.rooms_existing(pks=rooms)


def _joined_room(message, payload: dict):
    room = selectors.room_get_for_user(slug=payload.get("room"), user=message.user)
    if room.pk not in _session_rooms(message):
        raise ClientError("not-in-room", "Join the room first.")
    return room


def _within_limit(message, key: str, *, limit: int, what: str) -> list:
    """This socket's recent actions of one kind, or ClientError("rate-limited") if one more is too many."""
    return ratelimit.window_or_refuse(
        message.channel_session.get(key, []), now=time.time(), limit=limit, period=conf.RATE_LIMIT_SECONDS, what=what
    )


def _count(message, key: str, recent: list) -> None:
    message.channel_session[key] = [*recent, time.time()]


def join(message, payload: dict) -> None:
    room = selectors.room_get_for_user(slug=payload.get("room"), user=message.user)
    since = _since(payload)
    changes = _within_limit(message, "changes", limit=conf.RATE_LIMIT_JOINS, what="joins and leaves")
    joined = services.room_join(room=room, user=message.user, reply_channel=message.reply_channel.name)
    _count(message, "changes", changes)
    others = [pk for pk in _session_rooms(message) if pk != room.pk]
    # The room was just read; only the socket's other rooms need checking for a delete (none, for
    # a page's first join: a crowd's joins skip the query).
    message.channel_session["rooms"] = (selectors.rooms_existing(pks=others) if others else []) + [room.pk]
    if since is None:
        missed = selectors.message_history(room=room)
    else:
        missed = selectors.message_list_since(room=room, since_id=since)
    reply = frames.join_reply(room=room, members=joined.members, seq=joined.seq, messages=missed)
    send_frame(message.reply_channel, reply)


def leave(message, payload: dict) -> None:
    room = _joined_room(message, payload)
    changes = _within_limit(message, "changes", limit=conf.RATE_LIMIT_JOINS, what="joins and leaves")
    services.room_leave(room=room, reply_channel=message.reply_channel.name, user=message.user)
    _count(message, "changes", changes)
    _set_session_rooms(message, [pk for pk in _session_rooms(message) if pk != room.pk])
    send_frame(message.reply_channel, frames.leave_reply(room=room))


def send(message, payload: dict) -> None:
    room = _joined_room(message, payload)
    sent = _within_limit(message, "sent", limit=conf.RATE_LIMIT_MESSAGES, what="messages")
    services.message_send(room=room, user=message.user, text=payload.get("message"))
    _count(message, "sent", sent)


def history(message, payload: dict) -> None:
    room = _joined_room(message, payload)
    since = _since(payload) or 0
    missed = selectors.message_list_since(room=room, since_id=since, limit=conf.CATCH_UP_LIMIT)
    send_frame(message.reply_channel, frames.history_reply(room=room, messages=missed))


COMMANDS = {"join": join, "leave": leave, "send": send, "history": history}


# Strict ordering: several workers take frames of one socket, and a "send" must not
# overtake the "join" before it. Connect is ordered too, or every frame would wait on it.
# The Origin of the handshake must be one of ALLOWED_HOSTS (a page of this site): another
# site's page cannot open a socket with its visitor's session cookie.
@allowed_hosts_only
@enforce_ordering
@channel_session_user_from_http
@catch_client_error
def chat_connect(message) -> None:
    accept(message.reply_channel)
    message.channel_session["rooms"] = []
    if not message.user.is_authenticated:
        raise ClientError("login-required", "Log in to chat.")
    services.lobby_add(reply_channel=message.reply_channel.name)


@close_if_stalled
@enforce_ordering
@channel_session_user
@catch_client_error
def chat_receive(message) -> None:
    payload = decode_json_frame(message)
    if not message.user.is_authenticated:
        raise ClientError("login-required", "Log in to chat.")
    command = payload.get("command")
    if not isinstance(command, str):
        raise ClientError("invalid-command", "command must be a string.")
    handler = COMMANDS.get(command)
    if handler is None:
        raise ClientError("unknown-command", f"command must be one of: {', '.join(sorted(COMMANDS))}.")
    handler(message, payload)


@enforce_ordering
@channel_session_user
def chat_disconnect(message) -> None:
    services.lobby_discard(reply_channel=message.reply_channel.name)
    services.socket_leave_all(reply_channel=message.reply_channel.name)
    message.channel_session["rooms"] = []
