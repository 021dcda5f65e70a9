"""The kit's management commands, and what they share."""

import functools
from typing import Callable

from django.core.management.base import CommandError


def redis_errors_said_plainly(handle: Callable) -> Callable:
    """Wraps a command's handle(): Redis unreachable or refusing the credentials ends the command
    with one line that says so (and exit 1), not a traceback an operator has to read through."""

    @functools.wraps(handle)
    def wrapper(self, *args, **options):
        from channels1_kit.outages import REDIS_ERRORS

        try:
            return handle(self, *args, **options)
        except REDIS_ERRORS as error:
            raise CommandError(f"the channel layer's Redis: {error}") from error

    return wrapper
