"""The liveblog stream: /liveblog/<slug>/stream/?since=<last change seen>. Read-only for clients."""

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
        raise ClientError("invalid-since", "since must be the seq of the last change received.")
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
    # Join before accepting, and before reading what the page missed: a change made in
    # between then arrives twice (the page drops the repeat by seq) rather than never.
    Group(liveblog.group_name).add(message.reply_channel)
    message.channel_session["liveblog_group"] = liveblog.group_name
    accept(message.reply_channel)
    try:
        since = _since(message)
    except ClientError as error:
        send_frame(message.reply_channel, error.as_frame())
        since = None
    if since is not None:
        for frame in selectors.changes_since(liveblog=liveblog, since=since):
            send_frame(message.reply_channel, frame)
        # Every change up to the seq read with the liveblog (before the join) had committed
        # when the catch-up was read, so it is in the catch-up or was on the page already.
        # A cursor ahead of the liveblog (not one of its own) is set back too.
        if since != liveblog.seq:
            send_frame(message.reply_channel, frames.liveblog_synced(liveblog.seq))


@channel_session
@catch_client_error
def stream_receive(message, slug: str) -> None:
    raise ClientError("read-only", "The liveblog stream does not take frames.")


@channel_session
def stream_disconnect(message, slug: str) -> None:
    group_name = message.channel_session.get("liveblog_group")
    if group_name:
        Group(group_name).discard(message.reply_channel)
