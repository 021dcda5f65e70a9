"""The liveblog stream: /liveblog/<slug>/stream/?since=<last change seen>. Read-only for clients."""

from channels import Group
from channels.security.websockets import allowed_hosts_only

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
#
# No channel session: the stream keeps nothing per socket (its disconnect finds the group from
# the slug), so a page that reconnects costs no session read, create and write. A reconnect
# that missed nothing is one query and two Redis calls (the group, the accept).
@allowed_hosts_only
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
    accept(message.reply_channel)
    try:
        since = _since(message)
    except ClientError as error:
        send_frame(message.reply_channel, error.as_frame())
        since = None
    # A page already at the liveblog's latest change has nothing to read: no catch-up query,
    # no frame. Otherwise every change up to the seq read with the liveblog (before the join) had
    # committed when the catch-up was read, so it is in the catch-up or was on the page already;
    # a cursor ahead of the liveblog (not one of its own) is set back too.
    if since is not None and since != liveblog.seq:
        for frame in selectors.changes_since(liveblog=liveblog, since=since):
            send_frame(message.reply_channel, frame)
        send_frame(message.reply_channel, frames.liveblog_synced(liveblog.seq))


@catch_client_error
def stream_receive(message, slug: str) -> None:
    raise ClientError("read-only", "The liveblog stream does not take frames.")


def stream_disconnect(message, slug: str) -> None:
    # The slug of the socket's path: a liveblog renamed since the socket joined is not found by
    # it, and the workers' sweep takes the gone socket out of its group instead.
    group_name = selectors.liveblog_group_name(slug=slug)
    if group_name is not None:
        Group(group_name).discard(message.reply_channel)
