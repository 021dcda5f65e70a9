"""A daphne that stops without a stampede: on SIGTERM it drains, and a full queue says when to come back.

daphne 1.4.2 stops on SIGTERM by closing every socket at once: all the pages of that daphne
reconnect in the same second or two, into the daphnes that stay, and their connects queue
behind each other (a rolling restart of 10,000 sockets refused 99,000 handshakes). Here
daphne's side of the layer (channels1_kit/interface.py) hooks Twisted's shutdown, which waits
for it, and:

* stops listening at once, so that new connections go to the other daphnes (a socket shared
  with them, as under supervisord's fd, stays open there);
* closes its sockets in slices over CHANNELS1_KIT_DRAIN_SECONDS (20 by default, inside the
  30 s Heroku and supervisord's stopwaitsecs give before SIGKILL), each with a frame
  `{"type": "server.restarting", "retry_after": N}` and the close code CLOSE_RESTARTING (4012:
  the standard 1012 "service restart" is one autobahn will not send from the application, which
  allows 1000 and 3000-4999 only). N is drawn at random per socket from
  RESTART_RETRY_AFTER_SECONDS, and the pages wait that long before they reconnect: the slices
  spread the closes, the draw spreads the returns;
* then lets daphne stop.

And when `websocket.connect` is full (the workers are behind), daphne would answer the
handshake 503, which a browser's WebSocket cannot read: the page retries on its own schedule
into the same backlog. Instead the layer accepts the handshake itself, sends
`{"error": "server-busy", "retry_after": N}` and closes with CLOSE_BUSY (4013, after 1013 "try
again later"): no worker hears of it, and the page comes back after N seconds (drawn from
BUSY_RETRY_AFTER_SECONDS, its upper end stretched up to BUSY_RETRY_AFTER_MAX_SECONDS by how many
more handshakes want in than the workers answer: HandshakeLoad). A Redis that cannot be
reached is still answered 503 (with Retry-After): the page cannot be told anything better there.
"""

import math
import random
from collections import deque
from typing import Deque, List, Sequence, Tuple

CLOSE_RESTARTING = 4012
CLOSE_BUSY = 4013
# Seconds between two slices of a drain.
SLICE_SECONDS = 0.5
# Where a page's wait before it reconnects is drawn from.
RESTART_RETRY_AFTER_SECONDS = (1.0, 5.0)
BUSY_RETRY_AFTER_SECONDS = (3.0, 10.0)


def slices(sockets: Sequence[str], *, window: float, every: float = SLICE_SECONDS) -> List[Tuple[float, List[str]]]:
    """When (seconds from now) to close which sockets: evenly over the window, the first slice at
    once, the last at the window's end at the latest; an empty list for no socket."""
    if not sockets:
        return []
    count = max(1, min(len(sockets), int(window / every) + 1))
    per_slice = math.ceil(len(sockets) / count)
    chunks = [list(sockets[start : start + per_slice]) for start in range(0, len(sockets), per_slice)]
    step = window / max(len(chunks) - 1, 1) if len(chunks) > 1 else 0.0
    return [(round(index * step, 3), chunk) for index, chunk in enumerate(chunks)]


# The busy answer's window grows with how far the handshakes wanting in exceed those the workers
# answer, up to this: pages told 3-10 s while ten times as many want in as get in come back into
# the same backlog, busy answers crowd out the work, and a restart storm never converges.
BUSY_RETRY_AFTER_MAX_SECONDS = 60.0
# Handshakes over this many seconds tell how busy the workers are.
LOAD_WINDOW_SECONDS = 10.0


class HandshakeLoad:
    """Handshakes wanting in (sent to the workers, or told busy) against those the workers answered,
    over the last LOAD_WINDOW_SECONDS: how long a busy answer tells a page to stay away."""

    def __init__(self, now):
        self._now = now
        self._wanting: Deque[float] = deque()
        self._answered: Deque[float] = deque()

    def wanted(self) -> None:
        self._wanting.append(self._now())

    def answered(self) -> None:
        self._answered.append(self._now())

    def busy_bounds(self) -> Tuple[float, float]:
        """BUSY_RETRY_AFTER_SECONDS, its upper end stretched by the overload: the returns of the pages
        told busy spread over a window in which the workers can take them."""
        cutoff = self._now() - LOAD_WINDOW_SECONDS
        for times in (self._wanting, self._answered):
            while times and times[0] < cutoff:
                times.popleft()
        low, high = BUSY_RETRY_AFTER_SECONDS
        overload = len(self._wanting) / max(len(self._answered), 1)
        return low, min(max(high, high * overload), BUSY_RETRY_AFTER_MAX_SECONDS)


def retry_after(bounds: Tuple[float, float]) -> int:
    """A whole number of seconds within bounds, at random (pages read it as seconds)."""
    low, high = bounds
    return int(round(random.uniform(low, high)))


def restarting_frame(seconds: int) -> dict:
    return {
        "type": "server.restarting",
        "message": f"The server is restarting: reconnecting in {seconds} s.",
        "retry_after": seconds,
    }


def busy_frame(seconds: int) -> dict:
    return {
        "error": "server-busy",
        "message": f"The server is busy: try again in {seconds} s.",
        "retry_after": seconds,
    }
