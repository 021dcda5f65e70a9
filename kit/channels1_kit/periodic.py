"""A runworker's background chores: one daemon thread each, doing one thing every so often.

The sweep (channels1_kit/sockets.py) and the presence reaper (channels1_kit/presence.py) run
so. A chore that finds Redis unusable says once that it pauses, and once that it resumes: the
reason (a refused password, an unreachable host) is the worker's own line to say
(channels1_kit/outages.py), once per outage, and a reaper running every second must not repeat
it every second. Any other failure is logged with its traceback; neither ends the thread. Each
turn closes the thread's database connection, so that a chore holds none between turns.
"""

import logging
import random
import threading
from typing import Callable, Optional

from django.db import connection as db_connection

from channels1_kit.outages import REDIS_ERRORS

logger = logging.getLogger(__name__)


def _forever(name: str, work: Callable[[], object], interval: float, spread: bool, stop: threading.Event) -> None:
    # Workers started together would do it together: spread them over the interval.
    if spread and stop.wait(random.uniform(0.5, 1.0) * interval):
        return
    paused = False
    while not stop.is_set():
        try:
            work()
            if paused:
                logger.info("%s resumed: Redis can be used again", name)
                paused = False
        except REDIS_ERRORS as error:
            if not paused:
                logger.warning("%s paused while Redis cannot be used (%s)", name, type(error).__name__)
                paused = True
        except Exception:
            logger.exception("%s failed", name)
        finally:
            db_connection.close()
        stop.wait(interval)


def start(
    name: str,
    work: Callable[[], object],
    *,
    interval: float,
    spread: bool = False,
    stop: Optional[threading.Event] = None,
) -> threading.Thread:
    """Runs work() every `interval` seconds in a daemon thread named `name`, until `stop` is set
    (a worker's run forever: the thread ends with the process); returns the thread."""
    stop = stop if stop is not None else threading.Event()
    thread = threading.Thread(target=_forever, args=(name, work, interval, spread, stop), name=name, daemon=True)
    thread.start()
    return thread
