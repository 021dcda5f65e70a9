"""What an operator or an autoscaler reads to see whether the workers keep up.

Everything comes from the channel layer's statistics extension (asgi_redis keeps
per-channel counters in Redis), so any process that can reach Redis can report it.
"""

import time
from typing import Dict, Iterable, List

from channels import DEFAULT_CHANNEL_LAYER, channel_layers

# The channels daphne feeds and runworker drains; custom channels from the routing are added.
INTERFACE_CHANNELS = [
    "http.request",
    "http.disconnect",
    "websocket.connect",
    "websocket.receive",
    "websocket.disconnect",
]


def routed_channels() -> List[str]:
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    routed = sorted(layer.router.channels)
    return INTERFACE_CHANNELS + [name for name in routed if name not in INTERFACE_CHANNELS]


def channel_statistics(channels: Iterable[str]) -> Dict[str, dict]:
    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    return {name: layer.channel_statistics(name) for name in channels}


def channel_report(*, interval: float = 1.0) -> dict:
    """Backlog, age of the oldest message, messages per second and ChannelFull counts, per channel.

    The rate is measured over `interval` seconds between two readings of the counters.
    """
    channels = routed_channels()
    layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer
    first = channel_statistics(channels)
    started = time.monotonic()
    time.sleep(interval)
    second = channel_statistics(channels)
    elapsed = time.monotonic() - started
    report = {}
    for name in channels:
        sent = second[name]["messages_count"] - first[name]["messages_count"]
        report[name] = {
            "backlog": second[name]["messages_pending"],
            "oldest_message_age": second[name]["messages_max_age"],
            "messages_per_second": round(max(sent, 0) / elapsed, 2),
            "messages_total": second[name]["messages_count"],
            "channel_full_total": second[name]["channel_full_count"],
        }
    totals = layer.global_statistics()
    return {
        "channels": report,
        "messages_total": totals["messages_count"],
        "channel_full_total": totals["channel_full_count"],
        "interval": round(elapsed, 3),
    }
