"""The liveblog stream: /liveblog/<slug>/stream/?since=<last post id>. Read-only for clients."""

from channels import Group
from channels.security.websockets import allowed_hosts_only
from channels.sessions import channel_session

from channels1_kit.websocket import (
    CLOSE_NOT_FOUND,
    ClientError,
    accept,
    catch_client_error,
    parse_id,
    query_param,
    send_frame,
)

from . import frames, selectors


def _since(message) -> int:
    raw = query_param(message, "since")
    if raw is None:
        return 0
    since = parse_id(raw)
    if since is None:
        raise ClientError("invalid-since", "since must be the id of the last post received.")
    return since


# The Origin of the handshake must be one of ALLOWED_HOSTS: the stream is public, but
# another site's page has no business holding sockets on this one.
@allowed_hosts_only
@channel_session
def stream_connect(message, slug: str) -> None:
    liveblog = selectors.liveblog_get(slug=slug)
    if liveblog is None:
        accept(message.reply_channel)
        error = ClientError("liveblog-not-found", f"No liveblog is called {slug!r}.")
        send_frame(message.reply_channel, error.as_frame(), close=CLOSE_NOT_FOUND)
        return
    # Join before accepting: once its handshake is done the page hears every change, where
    # an edit or delete between an accept and a later join would be lost (no catch-up
    # replays those). Join before reading the missed posts too: a post saved in between
    # then arrives twice (the page drops the repeat by id) rather than never.
    Group(liveblog.group_name).add(message.reply_channel)
    message.channel_session["liveblog_group"] = liveblog.group_name
    accept(message.reply_channel)
    try:
        since = _since(message)
    except ClientError as error:
        send_frame(message.reply_channel, error.as_frame())
        since = None
    if since is not None:
        for post in selectors.post_list_since(liveblog=liveblog, since_id=since):
            send_frame(message.reply_channel, frames.post_event(frames.POST_CREATED, post))


@channel_session
@catch_client_error
def stream_receive(message, slug: str) -> None:
    raise ClientError("read-only", "The liveblog stream does not take frames.")


@channel_session
def stream_disconnect(message, slug: str) -> None:
    group_name = message.channel_session.get("liveblog_group")
    if group_name:
        Group(group_name).discard(message.reply_channel)
