"""The worker's side of sockets that are gone: they leave nothing behind, and cost no more work.

Every runworker gets both through channels1_kit/apps.py, whatever the site's consumers do:

* After a websocket.disconnect's consumer has run, the socket's channel session and its
  enforce_ordering wait channel's statistics are deleted (sockets.forget_sockets): channels
  1.1.8 leaves them in the session store for good, one per socket ever opened. Not when
  enforce_ordering parked the disconnect behind a frame still on its way: the disconnect runs
  again when that frame has, and the session still says what it has seen until then. Nor when
  the consumer asked to be retried (ConsumeLater).
* A reply to a socket of a dead daphne (one that was killed or restarted: it has written no
  socket snapshot for three heartbeats, channels1_kit/sockets.py) is dropped and counted,
  instead of failing its consumer with ChannelFull: nothing reads that daphne's reply channel
  any more, so it fills up, and every reply to its sockets would be a traceback in the log
  (14,000 of them in a rolling restart with 10,000 sockets). Once a daphne is known dead, the
  replies to it do not even reach Redis. The count is kept in Redis beside the layer's own
  statistics, per daphne and in all, and `manage.py channel_report` and /ops/channels show it
  ("replies dropped to gone sockets"). A reply whose channel is full while its daphne lives
  still raises ChannelFull, as before: that daphne is behind, and the consumer should know.
"""

import functools
import logging
import time
from typing import Any, Callable, Dict, Iterable, Tuple

from channels.exceptions import ConsumeLater

from channels1_kit import sockets
from channels1_kit.conf import setting

logger = logging.getLogger(__name__)

# The statistic's name, beside asgi_redis's messages_count and channel_full_count.
STAT_REPLIES_DROPPED_GONE = "replies_dropped_gone"


# -- nothing left behind ---------------------------------------------------------------------


def _parked(message) -> bool:
    """Whether enforce_ordering set this disconnect aside for a frame that has not run yet."""
    session = getattr(message, "channel_session", None)
    order = message.content.get("order")
    if session is None or order is None:
        return False
    next_order = session.get("__channels_next_order")
    return next_order is not None and int(next_order) <= int(order)


def forget_after_disconnect(message) -> None:
    """Deletes what the layer keeps for the socket of a websocket.disconnect that has been handled."""
    reply_channel = message.content.get("reply_channel")
    if not reply_channel or _parked(message):
        return
    try:
        sockets.forget_sockets(message.channel_layer, [reply_channel])
    except Exception as error:
        # The disconnect itself was handled; the session expires by itself (CHANNEL_SESSION_SECONDS).
        logger.warning("could not delete the channel session of %s: %s", reply_channel, error)


def _forgetting(consumer: Callable) -> Callable:
    @functools.wraps(consumer)
    def inner(message, **kwargs: Any):
        retried = False
        try:
            return consumer(message, **kwargs)
        except ConsumeLater:
            retried = True
            raise
        finally:
            if not retried:
                forget_after_disconnect(message)

    return inner


class _ForgettingRouter:
    """A channels Router whose websocket.disconnect consumers clean up after themselves."""

    def __init__(self, router):
        self._router = router

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    def match(self, message):
        match = self._router.match(message)
        if match is None or message.channel.name != "websocket.disconnect":
            return match
        consumer, kwargs = match
        return _forgetting(consumer), kwargs


# -- no work for a socket that is gone -------------------------------------------------------


def _statistics_keys(layer, daphne: str) -> Tuple[str, str]:
    """The per-daphne and the overall counter of dropped replies, as asgi_redis names its statistics."""
    return (
        f"{layer.stats_prefix}{daphne}:{STAT_REPLIES_DROPPED_GONE}",
        f"{layer.stats_prefix}{layer.global_stats_key}:{STAT_REPLIES_DROPPED_GONE}",
    )


def count_dropped(layer, daphne: str) -> None:
    """Counts one reply dropped because the daphne `daphne` is gone (on its reply channel's shard)."""
    if not hasattr(layer, "stats_prefix"):
        return
    per_daphne, overall = _statistics_keys(layer, daphne)
    pipeline = layer.connection(layer.consistent_hash(daphne)).pipeline(transaction=False)
    # Kept as long as the layer keeps its own statistics of a channel, and in all.
    pipeline.incr(per_daphne).expire(per_daphne, layer.channel_statistics_expiry)
    pipeline.incr(overall).expire(overall, layer.global_statistics_expiry)
    pipeline.execute()


def dropped_statistics(layer, daphnes: Iterable[str]) -> Tuple[int, Dict[str, int]]:
    """Replies dropped to gone sockets: in all, and for each of these daphne reply channels."""
    if not hasattr(layer, "stats_prefix"):
        return 0, {daphne: 0 for daphne in daphnes}
    per_daphne = {}
    for daphne in daphnes:
        key, _ = _statistics_keys(layer, daphne)
        per_daphne[daphne] = int(layer.connection(layer.consistent_hash(daphne)).get(key) or 0)
    _, overall = _statistics_keys(layer, "")
    total = sum(int(layer.connection(index).get(overall) or 0) for index in range(layer.ring_size))
    return total, per_daphne


class GoneSocketsLayer:
    """The worker's channel layer: replies to dead daphnes dropped and counted; its router's
    websocket.disconnect consumers delete the socket's channel session after them."""

    def __init__(self, layer, *, now: Callable[[], float] = time.monotonic):
        self._layer = layer
        self._now = now
        # daphne reply channel -> (when judged, whether dead). A verdict holds for a heartbeat.
        self._verdicts: Dict[str, Tuple[float, bool]] = {}
        self.router = _ForgettingRouter(layer.router)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __str__(self) -> str:
        return str(self._layer)

    def send(self, channel: str, message: dict) -> None:
        daphne = sockets.daphne_of(channel)
        if daphne is not None and self._dead(daphne, ask=False):
            count_dropped(self._layer, daphne)
            return
        try:
            self._layer.send(channel, message)
        except self._layer.ChannelFull:
            if daphne is None or not self._dead(daphne, ask=True):
                raise
            count_dropped(self._layer, daphne)

    def _dead(self, daphne: str, *, ask: bool) -> bool:
        """Whether the daphne is dead: as judged within the last heartbeat; else asked of Redis if
        `ask` or if it was dead then (a verdict of dead is checked again once a heartbeat)."""
        now, heartbeat = self._now(), setting("HEARTBEAT_SECONDS")
        verdict = self._verdicts.get(daphne)
        if verdict is not None and now - verdict[0] < heartbeat:
            return verdict[1]
        if not ask and (verdict is None or not verdict[1]):
            return False
        dead = sockets.daphne_dead(self._layer, daphne)
        if dead and verdict is None:
            logger.info("%s is gone: replies to its sockets are dropped and counted (channel_report)", daphne)
        # Bounded by the daphnes heard of within a heartbeat: older verdicts are judged afresh anyway.
        for stale in [name for name, (at, _) in self._verdicts.items() if now - at >= heartbeat and name != daphne]:
            del self._verdicts[stale]
        self._verdicts[daphne] = (now, dead)
        return dead


def drop_replies_to_gone_sockets(sender, **kwargs) -> None:
    """worker_process_ready receiver: gives the worker (and its --threads siblings) the layer above."""
    for worker in [sender, *getattr(sender, "workers", [])]:
        if not isinstance(worker.channel_layer, GoneSocketsLayer):
            worker.channel_layer = GoneSocketsLayer(worker.channel_layer)
