"""What an operator or an autoscaler reads to see whether the workers keep up.

Everything comes from the channel layer's statistics extension (asgi_redis keeps
per-channel counters in Redis, and fanout_layer keeps them the same way), so any process
that reaches Redis can report it: `manage.py channel_report`, or the ops endpoint
(channels1_kit.urls: GET <where the site includes it>/channels).

Per channel:

* backlog: messages waiting now. On the channels runworker drains (websocket.receive,
  http.request, ...) a backlog that stays above zero means the workers are behind: add
  workers. On a daphne's reply channel (daphne.response.X!) it means that daphne is behind
  on sending to its sockets: add interface servers.
* oldest_message_age: seconds the oldest waiting message has waited; at the layer's
  expiry (CHANNEL_LAYER_EXPIRY) messages start to be dropped unread.
* messages_per_second: messages sent into the channel, measured over `interval` seconds.
* consumed_per_second: messages that left it over the same interval (taken by a reader, or
  expired). Below messages_per_second for a while: the backlog grows.
* channel_full_total: sends refused because the channel was full (ChannelFull), since
  the counters started. Any rise is lost work: a WebSocket closed by daphne, or a group
  message left out for some sockets.
* replies_dropped_gone (a daphne's reply channel only): replies the workers dropped because
  that daphne is gone (killed or restarted; channels1_kit/gone.py), counted for an hour after
  the last; in all, replies_dropped_to_gone_sockets. Expected around a restart; they cost
  nobody anything, so they are no reason to scale.
"""

import time
from typing import Dict, Iterable, List

from channels1_kit import gone, health
from channels1_kit.conf import channel_layer, layer_wrapper

# The channels daphne feeds, in the order a report lists them. Only those the routing
# consumes are reported: daphne also sends http.disconnect, which this site does not route
# and which waits in Redis until it expires, a backlog that means nothing.
INTERFACE_CHANNELS = [
    "http.request",
    "http.disconnect",
    "websocket.connect",
    "websocket.receive",
    "websocket.disconnect",
]
# runworker adds Django's view consumer for http.request to any routing (check_default).
ALWAYS_CONSUMED = {"http.request"}
# Each daphne's one reply channel, shared by all its sockets: "daphne.response.<random>!".
REPLY_CHANNEL_PATTERN = "daphne.response.*!"
# A bound on the reply channels listed, so a report stays small whatever Redis holds.
MAX_REPLY_CHANNELS = 200
MAX_INTERVAL = 10.0


def routed_channels() -> List[str]:
    """The channels runworker consumes: interface channels first, then the routing's own."""
    # The kit routes the health channel in every worker (channels1_kit/apps.py), whatever
    # the site's routing says.
    routed = set(layer_wrapper().router.channels) | ALWAYS_CONSUMED | {health.channel()}
    return [name for name in INTERFACE_CHANNELS if name in routed] + sorted(routed - set(INTERFACE_CHANNELS))


def reply_channels() -> List[str]:
    """The reply channels of the daphnes that have messages waiting or were sent some lately.

    A daphne's reply channel only exists in Redis while messages wait in it or its
    counters live (an hour), so this lists the daphnes that matter without knowing them.
    """
    layer = channel_layer()
    found = set()
    for index in range(layer.ring_size):
        connection = layer.connection(index)
        for prefix in (layer.prefix, layer.stats_prefix):
            for key in connection.scan_iter(match=prefix + REPLY_CHANNEL_PATTERN + "*", count=1000):
                name = key.decode("utf8")[len(prefix) :]
                found.add(name.partition("!")[0] + "!")
                if len(found) >= MAX_REPLY_CHANNELS:
                    return sorted(found)
    return sorted(found)


def channel_statistics(channels: Iterable[str]) -> Dict[str, dict]:
    layer = channel_layer()
    return {name: layer.channel_statistics(name) for name in channels}


def channel_report(*, interval: float = 1.0) -> dict:
    """Backlog, age of the oldest message, rates and ChannelFull counts, per channel.

    Rates are measured over `interval` seconds (at most MAX_INTERVAL) between two readings.
    """
    if not 0 < interval <= MAX_INTERVAL:
        raise ValueError(f"interval must be more than 0 and at most {MAX_INTERVAL:g} seconds")
    replies = reply_channels()
    channels = routed_channels() + replies
    layer = channel_layer()
    first = channel_statistics(channels)
    started = time.monotonic()
    time.sleep(interval)
    second = channel_statistics(channels)
    elapsed = time.monotonic() - started
    report = {}
    for name in channels:
        before, after = first[name], second[name]
        # Counters expire an hour after a channel's last message, and may restart from zero.
        sent = max(after["messages_count"] - before["messages_count"], 0)
        left = max(sent - (after["messages_pending"] - before["messages_pending"]), 0)
        report[name] = {
            "backlog": after["messages_pending"],
            "oldest_message_age": after["messages_max_age"],
            "messages_per_second": round(sent / elapsed, 2),
            "consumed_per_second": round(left / elapsed, 2),
            "messages_total": after["messages_count"],
            "channel_full_total": after["channel_full_count"],
        }
    dropped_total, dropped = gone.dropped_statistics(layer, replies)
    for name, count in dropped.items():
        report[name]["replies_dropped_gone"] = count
    totals = layer.global_statistics()
    return {
        "channels": report,
        "backlog": sum(row["backlog"] for name, row in report.items() if not name.endswith("!")),
        "messages_total": totals["messages_count"],
        "channel_full_total": totals["channel_full_count"],
        "replies_dropped_to_gone_sockets": dropped_total,
        "interval": round(elapsed, 3),
    }
