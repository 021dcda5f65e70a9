"""A runworker's background chores: one daemon thread each, doing one thing every so often.

The sweep (channels1_kit/sockets.py) and the presence reaper (channels1_kit/presence.py) run
so. A chore that finds Redis down says so in one line and waits for its next turn; any other
failure is logged with its traceback; neither ends the thread. Each turn closes the thread's
database connection, so that a chore holds none between turns.
"""

import logging
import random
import threading
import time
from typing import Callable

from django.db import connection as db_connection

from channels1_kit.outages import REDIS_ERRORS

logger = logging.getLogger(__name__)


def _forever(name: str, work: Callable[[], object], interval: float, spread: bool) -> None:
    if spread:
        # Workers started together would do it together: spread them over the interval.
        time.sleep(random.uniform(0.5, 1.0) * interval)
    while True:
        try:
            work()
        except REDIS_ERRORS as error:
            logger.warning("%s skipped: %s", name, error)
        except Exception:
            logger.exception("%s failed", name)
        finally:
            db_connection.close()
        time.sleep(interval)


def start(name: str, work: Callable[[], object], *, interval: float, spread: bool = False) -> threading.Thread:
    """Runs work() every `interval` seconds in a daemon thread named `name`; returns the thread."""
    thread = threading.Thread(target=_forever, args=(name, work, interval, spread), name=name, daemon=True)
    thread.start()
    return thread
