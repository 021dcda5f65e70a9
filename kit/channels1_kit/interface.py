"""The channel layer as a daphne process uses it: `daphne project.asgi:channel_layer`.

daphne 1.4.2 handles a full channel (ChannelFull) well: a request gets 503, a WebSocket
handshake 503, a socket whose frame cannot be queued is closed with 1013 ("try again
later"). It handles a Redis that is down or restarting badly: an exception other than
ChannelFull fails a handshake with 500 and is left unhandled in a frame, and the sockets
that stay open have lost their group memberships once Redis comes back empty, so they
would never hear another broadcast. InterfaceLayer wraps the configured layer and:

* turns a Redis error on send into ChannelFull, so daphne answers 503 and closes with
  1013 rather than failing;
* keeps the sockets it has sent a websocket.connect for and not yet a disconnect, and
  every CHANNELS1_KIT_HEARTBEAT_SECONDS writes that list to Redis (channels1_kit/sockets.py sweeps
  what other sockets left behind) and asks each Redis for its run_id and for the marker key
  this daphne keeps there: when the run_id changed and the marker is gone, Redis restarted
  empty and forgot the groups, so every socket is closed with CLOSE_RECONNECT and the pages
  reconnect and catch up with `since`. A new run_id with the marker still there is another
  server that kept the data (a Sentinel failover to a replica, a restart from a snapshot):
  the groups are there too, and the sockets stay open;
* keeps each socket within its frame budget (channels1_kit/floods.py): a socket that floods
  is told, then closed with 4429, and its frames over budget never reach Redis or a worker;
* keeps each client within its budget (channels1_kit/client_budgets.py): handshakes, open
  sockets and frames per session and per address. A handshake over budget is refused with 429
  and Retry-After, or, for a client sent away, answered here and closed with 4430: either way
  its websocket.connect never enters Redis, and nothing of that socket after it;
* accepts a registered stream's page whose `since` the stream's log in Redis covers, and
  sends it what it missed, itself (channels1_kit/streams.py): no worker hears of that socket's
  connect or disconnect;
* keeps a frame larger than CHANNELS1_KIT_MAX_FRAME_BYTES out of Redis: the worker gets its
  size in its place and answers "frame-too-large";
* on SIGTERM stops listening and closes its sockets in slices over CHANNELS1_KIT_DRAIN_SECONDS,
  each told when to come back (4012), and answers a handshake itself, telling the page when to
  come back (4013) rather than 503, when websocket.connect is full or this daphne already has
  CHANNELS1_KIT_CONNECT_PENDING_LIMIT handshakes waiting for a worker (channels1_kit/drain.py);
* answers GET CHANNELS1_KIT_HEALTHZ_PATH (/healthz) itself while Redis cannot be used, 503
  with the reason (refused password, refused certificate, unknown host...) in place of
  daphne's "Request queue full".

Everything else (receive_twisted, group_expiry, extensions, ChannelFull...) is the
wrapped layer's.
"""

import json
import logging
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

import redis
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, task

from channels1_kit import drain, redis_urls, sockets, streams
from channels1_kit.client_budgets import (
    AWAY,
    CLOSE_GO_AWAY,
    PASS,
    ClientBudgets,
    Decision,
    Identity,
    away_frame,
    client_refusal_frame,
)
from channels1_kit.conf import setting
from channels1_kit.floods import CLOSE_TOO_MANY, FrameBudget, refusal_frame
from channels1_kit.outages import redis_trouble
from channels1_kit.websocket import CLOSE_RECONNECT, OVERSIZED_KEY, frame_text

logger = logging.getLogger(__name__)

# daphne 1.4.2's --websocket_connect_timeout default: a handshake no worker answered by then is refused.
CONNECT_TIMEOUT_SECONDS = 5


class InterfaceLayer:
    def __init__(self, layer, *, clock=None, proxy_headers: bool = False):
        self._layer = layer
        # The heartbeat's scheduler: the reactor, or a twisted.internet.task.Clock in tests.
        self._clock = clock
        self._sockets: Set[str] = set()
        # Messages for daphne that did not come from Redis (closes), or that came while
        # daphne was handed a close instead: handed out before anything else.
        self._ready: Deque[Tuple[str, dict]] = deque()
        self._waiter: Optional[defer.Deferred] = None
        self._receiving: Optional[defer.Deferred] = None
        self._send_channel: Optional[str] = None
        self._heartbeat: Optional[task.LoopingCall] = None
        # Set once a drain began (SIGTERM): handshakes still on their way are told to come back.
        self._draining = False
        # Handshakes sent to the workers and not answered yet: {reply channel: when sent}.
        self._pending: Dict[str, float] = {}
        # Sockets of a stream accepted here (channels1_kit/streams.py): {reply channel: group}.
        self._direct: Dict[str, str] = {}
        self._run_ids: Optional[List[str]] = None
        self._redis_down = False
        # The cause of the last send Redis refused, until a heartbeat finds Redis usable again.
        self._refusal: Optional[str] = None
        now = clock.seconds if clock is not None else time.monotonic
        self._now = now
        self._load = drain.HandshakeLoad(now)
        self._budget = FrameBudget(now=now)
        # proxy_headers: daphne was started with --proxy-headers, so X-Forwarded-For names the client.
        self._clients = ClientBudgets(
            now=now,
            connection=lambda: self._layer.connection(0),
            prefix=getattr(layer, "prefix", "asgi:"),
            proxy_headers=proxy_headers,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __str__(self) -> str:
        return f"InterfaceLayer({self._layer})"

    @property
    def open_sockets(self) -> Set[str]:
        return set(self._sockets)

    # Sending: what daphne pushes into Redis.

    def send(self, channel: str, message: dict) -> None:
        reply_channel = message.get("reply_channel")
        decision = None
        if channel in ("websocket.receive", "websocket.disconnect") and self._clients.turned_away(
            reply_channel, gone=channel == "websocket.disconnect"
        ):
            # Answered here, never connected through Redis: no worker may hear of it now.
            return
        if channel == "websocket.connect" and self._draining:
            frame = drain.restarting_frame(drain.retry_after(drain.RESTART_RETRY_AFTER_SECONDS))
            self._answer_handshake(reply_channel, frame, drain.CLOSE_RESTARTING)
            return
        if channel == "websocket.connect" and self._backlog_full():
            # The workers are this far behind: a handshake queued now would wait past daphne's
            # connect timeout, and the worker's work for it would be wasted on a page already
            # refused (the congestion collapse of a restart storm). Told when to come back instead.
            self._answer_handshake(reply_channel, drain.busy_frame(self._busy_retry_after()), drain.CLOSE_BUSY)
            return
        if channel == "websocket.connect":
            decision = self._clients.handshake(message)
            if decision.verdict != PASS:
                self._turn_away(reply_channel, decision)
                return
            if self._accept_up_to_date(reply_channel, message, decision):
                return
        elif channel == "websocket.receive":
            order = self._admit_frame(reply_channel, int(message.get("order", 0)))
            if order is None:
                return
            if order != message.get("order"):
                message = dict(message, order=order)
            message = self._bounded(message)
        elif channel == "websocket.disconnect":
            # Gone whether or not Redis takes the message: the sweep finds it missing.
            self._sockets.discard(reply_channel)
            group = self._direct.pop(reply_channel, None)
            if group is not None:
                # Accepted here: its disconnect is here too, and no worker heard of the socket.
                self._clients.closed(reply_channel)
                self._budget.forget(reply_channel)
                self._leave_direct(reply_channel, group)
                return
            waited_since = self._pending.pop(reply_channel, None)
            self._clients.closed(reply_channel)
            if (
                waited_since is not None
                and self._now() - waited_since >= CONNECT_TIMEOUT_SECONDS
                and hasattr(self._layer, "send_with_expiry")
            ):
                # A handshake no worker answered within daphne's connect timeout: daphne refused
                # it, and its websocket.connect expired in Redis unread. No worker ran its connect,
                # so its disconnect would only be work (a restart storm has thousands), and under
                # enforce_ordering a session made for it and a frame parked behind the connect that
                # never comes. The rare connect a worker took just before it expired leaves what the
                # sweep takes away (the socket is in no daphne's snapshot).
                self._budget.forget(reply_channel)
                return
            order = self._budget.renumber(reply_channel, int(message.get("order", 0)))
            if order != message.get("order", 0):
                message = dict(message, order=order)
        try:
            if channel == "websocket.connect" and hasattr(self._layer, "send_with_expiry"):
                # Gone from Redis when daphne stops waiting for it: no worker accepts a refused page.
                self._layer.send_with_expiry(channel, message, CONNECT_TIMEOUT_SECONDS)
            else:
                self._layer.send(channel, message)
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            # Said once per cause while Redis stays unusable: every request and frame meets it.
            cause = redis_urls.without_url(str(error))
            if cause != self._refusal:
                logger.warning("Redis refused %s (%s): answering as if the channel were full", channel, error)
                self._refusal = cause
            self._redis_down = True
            if channel == "websocket.receive":
                self._sockets.discard(reply_channel)
                self._budget.forget(reply_channel)
                self._clients.closed(reply_channel)
            if channel == "http.request" and message.get("path") == setting("HEALTHZ_PATH"):
                self._answer_unhealthy(reply_channel, error)
                return
            raise self._layer.ChannelFull(channel) from error
        except self._layer.ChannelFull:
            if channel == "websocket.connect":
                # The workers are behind: a 503 would have the page retry on its own schedule
                # into the same backlog; it is told when to come back instead, and no worker hears of it.
                seconds = self._busy_retry_after()
                logger.debug("websocket.connect is full: %s told to come back in %d s", reply_channel, seconds)
                self._answer_handshake(reply_channel, drain.busy_frame(seconds), drain.CLOSE_BUSY)
                return
            # daphne closes a socket whose frame it cannot queue, and says nothing more.
            if channel == "websocket.receive":
                self._sockets.discard(reply_channel)
                self._budget.forget(reply_channel)
                self._clients.closed(reply_channel)
            raise
        if channel == "websocket.connect":
            self._sockets.add(reply_channel)
            self._clients.opened(reply_channel, decision.identities)
            self._pending[reply_channel] = self._now()
            self._load.wanted()

    def _accept_up_to_date(self, reply_channel: str, message: dict, decision: Decision) -> bool:
        """A stream's page its stream's log can catch up: put in its group, accepted and caught up here
        (channels1_kit/streams.py)."""
        try:
            joined = streams.join_if_caught_up(self._layer, message)
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            return False  # The workers' way says what is wrong with Redis.
        if joined is None:
            return False
        self._direct[reply_channel] = joined.group
        self._sockets.add(reply_channel)
        self._clients.opened(reply_channel, decision.identities)

        def answer() -> None:
            self._answer(reply_channel, {"accept": True})
            for text in joined.texts:
                self._answer(reply_channel, {"text": text})

        # daphne makes the handshake's Deferred after this send returns: the answer waits a turn.
        self._later(answer)
        return True

    def _leave_direct(self, reply_channel: str, group: str) -> None:
        try:
            self._layer.group_discard(group, reply_channel)
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            # The sweep takes it out: the socket is in no daphne's snapshot any more.
            logger.debug("%s could not leave %s (%s): left to the sweep", reply_channel, group, error)

    def _admit_frame(self, reply_channel: str, order: int) -> Optional[int]:
        """The frame's order as the workers must see it, or None: refused by its socket's budget or its client's."""
        if FrameBudget.enabled():
            verdict = self._budget.frame(reply_channel, order)
        else:
            verdict = self._budget.passing(reply_channel, order)
        if not verdict.passed:
            self._refuse_frame(reply_channel, tell=verdict.tell, close=verdict.close)
            return None
        client = self._clients.frame(reply_channel)
        if not client.passed:
            self._budget.refuse(reply_channel)
            if client.send_away is not None:
                self._send_away(client.send_away)
            else:
                self._refuse_frame(reply_channel, tell=client.tell, close=False, client=True)
            return None
        return verdict.order

    def _turn_away(self, reply_channel: str, decision: Decision) -> None:
        """A handshake over its client's budget, answered here: 429, or accepted and closed with 4430."""
        self._clients.turn_away(reply_channel)
        if decision.verdict == AWAY:
            # daphne makes the handshake's Deferred after this send returns: the answer waits a turn.
            reply = {"accept": True, "text": frame_text(away_frame(decision.retry_after)), "close": CLOSE_GO_AWAY}
            self._later(lambda: self._answer(reply_channel, reply))
            return
        logger.debug("%s refused with 429: %s", reply_channel, decision.why)
        # daphne 1.4.2 lets ConnectionDeny through to autobahn, whose failHandshake writes its
        # reason into the status line as it is and takes no headers from it: the one way to send
        # Retry-After without replacing daphne's protocol class. The text is ours, never the client's.
        raise ConnectionDeny(429, f"Too Many Requests\r\nRetry-After: {decision.retry_after}")

    def _answer_handshake(self, reply_channel: str, frame: dict, close: int) -> None:
        """Accepts a handshake here, says why in one frame and closes it: none of that socket enters Redis."""
        self._clients.turn_away(reply_channel)
        reply = {"accept": True, "text": frame_text(frame), "close": close}
        # daphne makes the handshake's Deferred after this send returns: the answer waits a turn.
        self._later(lambda: self._answer(reply_channel, reply))

    def _send_away(self, identity: Identity) -> None:
        seconds, channels = self._clients.send_away(identity)
        logger.warning(
            "%s kept flooding past its client frame budget: sent away for %d s, its %d socket(s) here closed with %d",
            identity,
            seconds,
            len(channels),
            CLOSE_GO_AWAY,
        )
        for channel in channels:
            self._ready.append((channel, {"text": frame_text(away_frame(seconds)), "close": CLOSE_GO_AWAY}))
        self._deliver_ready()

    def _answer(self, reply_channel: str, reply: dict) -> None:
        self._ready.append((reply_channel, reply))
        self._deliver_ready()

    def _later(self, call) -> None:
        if self._clock is not None:
            self._clock.callLater(0, call)
        else:
            from twisted.internet import reactor

            reactor.callLater(0, call)

    def _refuse_frame(self, reply_channel: str, *, tell: bool, close: bool, client: bool = False) -> None:
        """A frame over its socket's or its client's budget: dropped here; the client told once per flood, or closed."""
        if not (tell or close):
            return
        reply: dict = {}
        if tell:
            logger.info("%s is over its frame budget: its frames are dropped until it slows down", reply_channel)
            reply["text"] = frame_text(client_refusal_frame() if client else refusal_frame())
        if close:
            logger.warning("%s kept flooding: closing it with %d", reply_channel, CLOSE_TOO_MANY)
            reply["close"] = CLOSE_TOO_MANY
        self._ready.append((reply_channel, reply))
        self._deliver_ready()

    def _answer_unhealthy(self, reply_channel: str, error: Exception) -> None:
        # The reason without the URL: a load balancer's health check may be public.
        body = {"status": "redis-unavailable", "reason": redis_urls.without_url(str(error))}
        self._ready.append(
            (
                reply_channel,
                {
                    "status": 503,
                    "headers": [(b"Content-Type", b"application/json"), (b"Cache-Control", b"no-store")],
                    "content": json.dumps(body).encode("utf8"),
                    "more_content": False,
                },
            )
        )
        self._deliver_ready()

    def _bounded(self, message: dict) -> dict:
        payload = message.get("text")
        size = len(payload.encode("utf8")) if payload is not None else len(message.get("bytes") or b"")
        if size <= setting("MAX_FRAME_BYTES"):
            return message
        logger.info("Frame of %d bytes from %s kept out of Redis", size, message.get("reply_channel"))
        bounded = {key: value for key, value in message.items() if key not in ("text", "bytes")}
        bounded[OVERSIZED_KEY] = size
        return bounded

    # Receiving: what daphne takes for its sockets.

    def receive_twisted(self, channels):
        """The wrapped layer's receive_twisted, except that closes this layer decided on go first."""
        self._start(channels)
        if self._ready:
            return defer.succeed(self._ready.popleft())
        waiter = defer.Deferred()
        self._waiter = waiter
        if self._receiving is None:
            receiving = self._layer.receive_twisted(channels)
            self._receiving = receiving
            receiving.addCallbacks(self._received, self._receive_failed)
        return waiter

    def _busy_retry_after(self) -> int:
        """Seconds a handshake told busy stays away: longer the further the workers are behind."""
        self._load.wanted()
        return drain.retry_after(self._load.busy_bounds())

    def _backlog_full(self) -> bool:
        """Whether this daphne has CHANNELS1_KIT_CONNECT_PENDING_LIMIT handshakes waiting for a worker
        (those older than daphne's connect timeout are no longer waited for: daphne refused them)."""
        limit = setting("CONNECT_PENDING_LIMIT")
        if limit <= 0:
            return False
        if len(self._pending) >= limit:
            cutoff = self._now() - CONNECT_TIMEOUT_SECONDS
            for reply_channel, sent in list(self._pending.items()):
                if sent < cutoff:
                    del self._pending[reply_channel]
        return len(self._pending) >= limit

    def _received(self, result) -> None:
        if result and result[0] is not None:
            # A worker's first reply to a socket (its accept, or a refusal) ends its wait.
            if self._pending.pop(result[0], None) is not None:
                self._load.answered()
        self._receiving = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(result)
        elif result and result[0] is not None:
            # daphne was handed a close meanwhile: keep the message for its next call.
            self._ready.append(result)

    def _receive_failed(self, failure) -> None:
        self._receiving = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.errback(failure)
        else:
            logger.warning("receive failed: %s", failure.getErrorMessage())

    def _deliver_ready(self) -> None:
        if self._waiter is not None and self._ready:
            waiter, self._waiter = self._waiter, None
            waiter.callback(self._ready.popleft())

    # The heartbeat: snapshots of the open sockets, and Redis restarts.

    def _start(self, channels) -> None:
        if self._heartbeat is not None:
            return
        self._send_channel = next((channel for channel in channels if channel.endswith("!")), None)
        if self._send_channel is None:
            return
        if self._clock is None:
            from twisted.internet import reactor

            # Twisted waits for the Deferred of a "before shutdown" trigger: daphne stops once drained.
            reactor.addSystemEventTrigger("before", "shutdown", self.drain)
        self._heartbeat = task.LoopingCall(self.beat)
        if self._clock is not None:
            self._heartbeat.clock = self._clock
        self._heartbeat.start(setting("HEARTBEAT_SECONDS"), now=True).addErrback(
            lambda failure: logger.error("heartbeat stopped: %s", failure.getTraceback())
        )

    def _marker_key(self) -> str:
        return f"{self._layer.prefix}:daphne-marker:{self._send_channel}"

    def beat(self) -> None:
        """One heartbeat: the snapshot of open sockets, and a check that no Redis restarted empty."""
        # Local only, so whether or not Redis answers.
        self._clients.prune()
        marker = self._marker_key()
        try:
            run_ids, kept = [], []
            for index in range(self._layer.ring_size):
                connection = self._layer.connection(index)
                run_ids.append(connection.info("server")["run_id"])
                kept.append(connection.get(marker) is not None)
            sockets.write_snapshot(self._layer, self._send_channel, self._sockets, now=time.time())
            # As long as the memberships it stands for; rewritten every beat.
            for index in range(self._layer.ring_size):
                self._layer.connection(index).set(marker, "1", ex=max(self._layer.group_expiry, 1))
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            if not self._redis_down:
                logger.warning("Redis unreachable (%s); %d socket(s) wait for it", error, len(self._sockets))
            self._redis_down = True
            return
        if self._redis_down:
            logger.info("Redis reachable again")
            self._redis_down = False
        self._refusal = None
        if self._run_ids is not None:
            changed = [index for index, run_id in enumerate(run_ids) if run_id != self._run_ids[index]]
            emptied = [index for index in changed if not kept[index]]
            if emptied:
                self.close_all("Redis restarted and lost every group membership")
            elif changed:
                logger.warning(
                    "Redis shard(s) %s: another server (a failover?) with this daphne's data: %d socket(s) stay open",
                    ", ".join(map(str, changed)),
                    len(self._sockets),
                )
        self._run_ids = run_ids

    # Stopping: drain (channels1_kit/drain.py).

    def drain(self) -> defer.Deferred:
        """Stops listening, then closes every open socket, slice by slice over CHANNELS1_KIT_DRAIN_SECONDS,
        telling each when to come back; fires once the last slice is out."""
        from twisted.internet import reactor

        clock = self._clock if self._clock is not None else reactor
        self._draining = True
        if self._clock is None:
            self._stop_listening(reactor)
        plan = drain.slices(sorted(self._sockets), window=setting("DRAIN_SECONDS"))
        logger.warning(
            "Stopping: closing %d socket(s) in %d slice(s) over %.1f s",
            len(self._sockets),
            len(plan),
            plan[-1][0] if plan else 0.0,
        )
        for delay, chunk in plan:
            clock.callLater(delay, self._close_slice, chunk)
        done = defer.Deferred()
        # One slice more, for daphne to write the last closes before the reactor stops.
        clock.callLater((plan[-1][0] if plan else 0.0) + drain.SLICE_SECONDS, done.callback, None)
        return done

    def _stop_listening(self, reactor) -> None:
        from twisted.internet.tcp import Port

        for reader in list(reactor.getReaders()):
            if isinstance(reader, Port):
                reader.stopListening()

    def _close_slice(self, chunk: List[str]) -> None:
        for reply_channel in chunk:
            if reply_channel in self._sockets:
                frame = drain.restarting_frame(drain.retry_after(drain.RESTART_RETRY_AFTER_SECONDS))
                self._ready.append((reply_channel, {"text": frame_text(frame), "close": drain.CLOSE_RESTARTING}))
        self._deliver_ready()

    def close_all(self, reason: str) -> None:
        """Closes every open socket with CLOSE_RECONNECT; the pages reconnect and catch up."""
        logger.warning("%s: closing %d socket(s) so that they reconnect", reason, len(self._sockets))
        for reply_channel in sorted(self._sockets):
            self._ready.append((reply_channel, {"close": CLOSE_RECONNECT}))
        self._sockets.clear()
        self._deliver_ready()
