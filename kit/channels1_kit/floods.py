"""A per-socket frame budget that daphne enforces before a frame reaches Redis.

A consumer's own rate limit (chat's `rate-limited`) acts in a worker, after the frame went
through Redis and cost that worker a channel session load and save: a socket that floods
still queues its frames ahead of everyone else's. Here daphne's side of the layer
(channels1_kit/interface.py) keeps a token bucket per socket: CHANNELS1_KIT_FRAME_BURST frames
at once, then CHANNELS1_KIT_FRAME_RATE a second. A frame over budget never leaves daphne.

* The client is told once per flood: an error frame `{"error": "rate-limited", ...}`, from
  daphne itself.
* A socket that goes on (CHANNELS1_KIT_FLOOD_CLOSE_AFTER frames refused within
  FLOOD_WINDOW_SECONDS) is closed with CLOSE_TOO_MANY (4429). The standard code would be 1008,
  but autobahn, under daphne, sends no close code from the application but 1000 and 3000-4999.
* Channels 1 numbers a socket's frames (`order`: connect 0, frames 1..n, disconnect n+1), and
  enforce_ordering in the worker waits for every number. Refused frames leave gaps, so the
  numbers of the frames that do go on, and of the disconnect, are lowered by the count refused
  before them: the worker sees an unbroken sequence.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Optional

from channels1_kit.conf import setting

# "Too Many Requests", in the private-use range as this site's other codes (4000 + HTTP status).
CLOSE_TOO_MANY = 4429
FLOOD_WINDOW_SECONDS = 10.0


@dataclass
class _Bucket:
    tokens: float
    at: float
    # Frames refused so far: what later orders are lowered by.
    refused: int = 0
    # When the last frames were refused, within FLOOD_WINDOW_SECONDS, at most FLOOD_CLOSE_AFTER.
    recent: Deque[float] = field(default_factory=deque)
    # Whether the client was told of the flood it is in.
    told: bool = False
    # Whether it was closed for flooding: what still arrives is dropped without a word.
    closing: bool = False


@dataclass(frozen=True)
class Verdict:
    """What to do with one frame: pass it on with `order`, or refuse it (and maybe tell or close)."""

    passed: bool
    order: Optional[int] = None
    tell: bool = False
    close: bool = False


class FrameBudget:
    def __init__(self, *, now: Callable[[], float]):
        self._now = now
        self._buckets: Dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    @staticmethod
    def enabled() -> bool:
        return setting("FRAME_RATE") > 0

    def frame(self, reply_channel: str, order: int) -> Verdict:
        """The verdict on a websocket.receive of `reply_channel` numbered `order` by daphne."""
        now = self._now()
        burst, rate = setting("FRAME_BURST"), setting("FRAME_RATE")
        bucket = self._buckets.get(reply_channel)
        if bucket is None:
            bucket = self._buckets[reply_channel] = _Bucket(tokens=burst, at=now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            if bucket.tokens >= 1:
                # Back within budget with room to spare: the next flood is told again.
                bucket.told = False
            return Verdict(passed=True, order=order - bucket.refused)
        return self._refused(bucket, now)

    def passing(self, reply_channel: str, order: int) -> Verdict:
        """A frame of a socket with no budget of its own: passed, numbered past the refused ones."""
        bucket = self._buckets.get(reply_channel)
        return Verdict(passed=True, order=order - (bucket.refused if bucket is not None else 0))

    def refuse(self, reply_channel: str) -> None:
        """A frame this socket's budget had passed but its client's refused (channels1_kit/client_budgets.py,
        which says what to tell the client): its token given back, and counted as refused so that the
        orders after it are lowered."""
        bucket = self._buckets.get(reply_channel)
        if bucket is None:
            # No budget of its own (FRAME_RATE 0): kept only to count what its client's refused.
            bucket = self._buckets[reply_channel] = _Bucket(tokens=0, at=self._now())
        else:
            bucket.tokens += 1
        bucket.refused += 1

    def _refused(self, bucket: _Bucket, now: float) -> Verdict:
        bucket.refused += 1
        if bucket.closing:
            return Verdict(passed=False)
        bucket.recent.append(now)
        while bucket.recent and bucket.recent[0] <= now - FLOOD_WINDOW_SECONDS:
            bucket.recent.popleft()
        close = len(bucket.recent) >= setting("FLOOD_CLOSE_AFTER")
        tell = not bucket.told
        bucket.told = True
        bucket.closing = close
        return Verdict(passed=False, tell=tell, close=close)

    def renumber(self, reply_channel: str, order: int) -> int:
        """The order of a websocket.disconnect, lowered by the frames refused before it; forgets the socket."""
        bucket = self._buckets.pop(reply_channel, None)
        return order - (bucket.refused if bucket is not None else 0)

    def forget(self, reply_channel: str) -> None:
        self._buckets.pop(reply_channel, None)


def refusal_frame() -> dict:
    rate = setting("FRAME_RATE")
    return {
        "error": "rate-limited",
        "message": f"Too many frames: at most {setting('FRAME_BURST')} at once and {rate:g} a second; "
        "frames over that were dropped.",
    }
