"""A per-socket sliding-window limit, kept in the socket's channel session."""

from typing import List, Sequence

from channels1_kit.websocket import ClientError


def window_or_refuse(
    done: Sequence[float], *, now: float, limit: int, period: float, what: str = "messages"
) -> List[float]:
    """The times in `done` that are still inside the last `period` seconds; a ClientError
    "rate-limited" if there are `limit` of them already, so that one more would be too many."""
    recent = [moment for moment in done if now - period < moment <= now]
    if len(recent) >= limit:
        wait = max(recent[0] + period - now, 0.0)
        raise ClientError("rate-limited", f"At most {limit} {what} every {period:g} s: wait {wait:.0f} s.")
    return recent
