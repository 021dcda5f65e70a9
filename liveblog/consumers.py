"""The liveblog stream: /liveblog/<slug>/stream/?since=<last change seen>. Read-only for clients."""

import time

from channels import Group
from channels.security.websockets import allowed_hosts_only

from channels1_kit import streams
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
from .models import STREAM


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
# the slug), so a page that reconnects costs no session read, create and write. Most
# reconnects do not come here at all: their daphne accepts them and sends the changes they
# missed from the liveblog's recent ones in Redis (channels1_kit.streams, registered in apps.py).
@allowed_hosts_only
def stream_connect(message, slug: str) -> None:
    liveblog = selectors.liveblog_head(slug=slug)
    if liveblog is None:
        accept(message.reply_channel)
        error = ClientError("liveblog-not-found", f"No liveblog is called {slug!r}.")
        send_frame(message.reply_channel, error.as_frame(), close=CLOSE_NOT_FOUND)
        return
    # Join before accepting, and before reading what the page missed: a change made in
    # between then arrives twice (the page drops the repeat by seq) rather than never.
    Group(liveblog.group_name).add(message.reply_channel)
    accept(message.reply_channel)
    # The head as read (a head only moves forward): the daphnes answer the next reconnects of
    # pages that miss nothing themselves, also after a Redis that restarted empty forgot it.
    streams.publish(STREAM, key=slug, group=liveblog.group_name, seq=liveblog.seq)
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


# The group of each slug a disconnect looked up lately: a deploy's drain sends thousands of
# disconnects for one liveblog, and the query was a fifth of a worker's time for each. An entry
# outlives a rename or a delete by GROUP_NAME_SECONDS at most: the discard then misses, and the
# sweep takes the gone socket out of its group, as it does for a socket whose liveblog was renamed.
GROUP_NAME_SECONDS = 60.0
GROUP_NAMES_KEPT = 1000
_group_names: dict = {}


def _group_name(slug: str):
    now = time.monotonic()
    known = _group_names.get(slug)
    if known is not None and now - known[1] < GROUP_NAME_SECONDS:
        return known[0]
    group_name = selectors.liveblog_group_name(slug=slug)
    if len(_group_names) >= GROUP_NAMES_KEPT:
        _group_names.clear()
    if group_name is not None:
        _group_names[slug] = (group_name, now)
    return group_name


def forget_group_names(**kwargs) -> None:
    _group_names.clear()


def stream_disconnect(message, slug: str) -> None:
    # The slug of the socket's path: a liveblog renamed since the socket joined is not found by
    # it, and the workers' sweep takes the gone socket out of its group instead.
    group_name = _group_name(slug)
    if group_name is not None:
        Group(group_name).discard(message.reply_channel)
