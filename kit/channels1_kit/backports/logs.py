"""Log output that a client's text cannot forge, for Django 2.2 (CVE-2025-48432)."""

import logging
import re

# C0 and C1 control characters, DEL included, but not tab: each is written as an escape.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape(match: "re.Match[str]") -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_controls(text: str) -> str:
    """text with newlines, carriage returns and terminal escapes written out as \\n, \\r, \\x1b."""
    return _CONTROLS.sub(_escape, text)


class EscapeControlCharacters(logging.Filter):
    """Escapes control characters in a record's message and arguments.

    Django 2.2 logs the request path as it came ("Not Found: /a%0AINFO forged" arrives
    decoded, with its newline), so a crafted URL could add fake lines to the log or send
    escape sequences to the terminal of whoever reads it. Tracebacks keep their lines:
    only the message is escaped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = escape_controls(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(escape_controls(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: escape_controls(v) if isinstance(v, str) else v for key, v in record.args.items()}
        return True
