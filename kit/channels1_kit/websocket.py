"""What a site's WebSocket consumers share: JSON frames, client errors, close codes, broadcasts.

Consumers stay linear: they raise ClientError and the decorator turns it into one
`{"error": code, "message": text}` frame, so a bad frame never costs the socket or the worker.
"""

import functools
import json
import logging
import re
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

from channels import Group
from channels.sessions import channel_session, wait_channel_name
from django.db import transaction

from channels1_kit.conf import setting

logger = logging.getLogger(__name__)

# Private-use close codes (4000-4999): the HTTP status the close stands for, plus 4000.
# (autobahn, under daphne, refuses to send any other code than 1000 and 3000-4999.)
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
# "Reconnect and catch up": the server lost track of this socket's place (Redis restarted
# empty and took its group memberships, or a frame of it was lost with a killed worker).
CLOSE_RECONNECT = 4503

# The largest id a client may name in `since`: the databases' 64-bit integers.
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Where daphne's side of the channel layer (channels1_kit/interface.py) puts the size of a frame
# it kept out of Redis for being larger than CHANNELS1_KIT_MAX_FRAME_BYTES.
OVERSIZED_KEY = "oversized"


class ClientError(Exception):
    """Something the client sent or asked for that the server refuses; never a server fault."""

    def __init__(self, code: str, message: str):
        super().__init__(code)
        self.code = code
        self.message = message

    def as_frame(self) -> dict:
        return {"error": self.code, "message": self.message}


def frame_text(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def send_frame(reply_channel, payload: dict, *, close: Optional[int] = None) -> None:
    content: dict = {"text": frame_text(payload)}
    if close is not None:
        content["close"] = close
    reply_channel.send(content, immediately=True)


def accept(reply_channel) -> None:
    reply_channel.send({"accept": True}, immediately=True)


def decode_json_frame(message) -> dict:
    """The JSON object a client sent, or a ClientError that says what was wrong with it."""
    if message.content.get(OVERSIZED_KEY):
        raise ClientError("frame-too-large", f"Frames are at most {setting('MAX_FRAME_BYTES')} bytes.")
    text = message.content.get("text")
    if text is None:
        raise ClientError("binary-frame", "Frames must be JSON text, not binary.")
    try:
        payload = json.loads(text)
    except ValueError:
        raise ClientError("invalid-json", "The frame is not valid JSON.")
    except RecursionError:
        raise ClientError("invalid-json", "The frame is nested too deeply.")
    if not isinstance(payload, dict):
        raise ClientError("invalid-frame", "The frame must be a JSON object.")
    if not _storable(payload):
        raise ClientError("invalid-text", "The frame holds a NUL character or an unpaired surrogate.")
    return payload


def _storable(value: object) -> bool:
    """Whether every string in value (keys too) can be stored: no NUL (PostgreSQL refuses it)
    and no unpaired surrogate (JSON's "\\ud800" decodes to one; UTF-8 cannot encode it)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def parse_id(value: object) -> Optional[int]:
    """A non-negative id that the database can compare (from JSON or a query string), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
        return number if number <= MAX_ID else None
    return None


def broadcast_on_commit(group_name: str, payload: dict, *, close: Optional[int] = None) -> None:
    """Sends payload to the group once the transaction commits, if it commits; with `close`,
    daphne then closes every socket of the group with that code (in the same message).

    A broadcast that fails (Redis down, say) is logged and dropped: the row is saved, the
    request or frame that saved it succeeds, and the clients get it from their catch-up
    (`since`) when they reconnect.
    """
    content: dict = {"text": frame_text(payload)}
    if close is not None:
        content["close"] = close

    def send() -> None:
        try:
            Group(group_name).send(content, immediately=True)
        except Exception:
            logger.exception("broadcast to %s failed; clients catch up on reconnect", group_name)

    transaction.on_commit(send)


def query_param(message, name: str) -> Optional[str]:
    raw = message.content.get("query_string") or b""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    values = parse_qs(raw).get(name)
    return values[-1] if values else None


def catch_client_error(consumer: Callable) -> Callable:
    """Turns a ClientError raised by a consumer into an error frame on the same socket."""

    @functools.wraps(consumer)
    def inner(message, *args: Any, **kwargs: Any):
        try:
            return consumer(message, *args, **kwargs)
        except ClientError as error:
            logger.info("client error %s on %s", error.code, message.reply_channel)
            send_frame(message.reply_channel, error.as_frame())
        except Exception:
            # The socket and the worker outlive a bug: the client hears of it, the log has
            # the traceback, and enforce_ordering still sees this frame as handled.
            logger.exception("consumer failed on %s", message.reply_channel)
            send_frame(message.reply_channel, {"error": "server-error", "message": "The server failed; try again."})

    return inner


def close_if_stalled(consumer: Callable) -> Callable:
    """Closes a socket that waits for a frame that will never come, so that it reconnects.

    Put it outside enforce_ordering. That one parks every frame after one it has not seen
    yet, in the socket's wait channel; if that frame was lost (taken by a worker that was
    then killed, or by a Redis that restarted empty), every later frame of the socket
    would wait there until it expires and the client would never hear of it. When a new
    frame arrives out of order and the oldest parked one has waited
    CHANNELS1_KIT_ORDER_STALL_SECONDS (less than the layer's message expiry), the socket is
    closed with CLOSE_RECONNECT: the client reconnects and catches up (`since`). What the
    lost frames asked for was not done; everything saved before is caught up.

    It only reads the channel session: a save here, beside the worker that is handling
    the missing frame, could overwrite the order that worker records.
    """

    @channel_session
    @functools.wraps(consumer)
    def inner(message, *args: Any, **kwargs: Any):
        expected = message.channel_session.get("__channels_next_order", 0)
        order = int(message.content.get("order", 0))
        if order > expected:
            waited = _parked_for(message)
            if waited >= setting("ORDER_STALL_SECONDS"):
                logger.warning(
                    "%s: frames parked for %d s waiting for frame %d; closing the socket so that it reconnects",
                    message.reply_channel,
                    waited,
                    expected,
                )
                message.reply_channel.send({"close": CLOSE_RECONNECT}, immediately=True)
                return None
        return consumer(message, *args, **kwargs)

    return inner


def _parked_for(message) -> int:
    """Seconds the oldest frame parked by enforce_ordering for this socket has waited (0 if none,
    or if the layer keeps no statistics)."""
    statistics = getattr(message.channel_layer, "channel_statistics", None)
    if statistics is None:
        return 0
    stats = statistics(wait_channel_name(message.reply_channel.name))
    return stats.get("messages_max_age", 0) if stats.get("messages_pending", 0) else 0


def refuse_unknown_path(message) -> None:
    """websocket.connect for a path no app routes: refused at once (403), where an unrouted
    connect would hold its handshake open until daphne's connect timeout."""
    message.reply_channel.send({"close": True}, immediately=True)
