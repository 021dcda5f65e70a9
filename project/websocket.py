"""What every WebSocket consumer of the site shares: JSON frames and client errors.

Consumers stay linear: they raise ClientError and the decorator turns it into one
`{"error": code, "message": text}` frame, so a bad frame never costs the socket or the worker.
"""

import functools
import json
import logging
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

# Private-use close codes (4000-4999): the HTTP status the close stands for, plus 4000.
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403


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
    text = message.content.get("text")
    if text is None:
        raise ClientError("binary-frame", "Frames must be JSON text, not binary.")
    try:
        payload = json.loads(text)
    except ValueError:
        raise ClientError("invalid-json", "The frame is not valid JSON.")
    if not isinstance(payload, dict):
        raise ClientError("invalid-frame", "The frame must be a JSON object.")
    return payload


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
