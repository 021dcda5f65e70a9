"""The chat app's settings, each overridable from project settings as CHAT_<NAME>."""

from django.conf import settings

MESSAGE_MAX_LENGTH: int = getattr(settings, "CHAT_MESSAGE_MAX_LENGTH", 2000)
HISTORY_LENGTH: int = getattr(settings, "CHAT_HISTORY_LENGTH", 50)
# A client catching up after a reconnect gets at most this many messages per request.
CATCH_UP_LIMIT: int = getattr(settings, "CHAT_CATCH_UP_LIMIT", 500)
# Per socket, in any RATE_LIMIT_SECONDS: at most RATE_LIMIT_MESSAGES sends, and at most
# RATE_LIMIT_JOINS joins and leaves (each one locks its room and tells its members).
RATE_LIMIT_SECONDS: int = getattr(settings, "CHAT_RATE_LIMIT_SECONDS", 10)
RATE_LIMIT_MESSAGES: int = getattr(settings, "CHAT_RATE_LIMIT_MESSAGES", 10)
RATE_LIMIT_JOINS: int = getattr(settings, "CHAT_RATE_LIMIT_JOINS", 20)
