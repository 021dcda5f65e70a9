"""A runworker that outlives a Redis outage.

Channels 1's Worker.run() calls receive_many() with nothing around it: the first Redis
ConnectionError (Redis stopped, restarted, unreachable) ends the loop and the process.
A process manager would start it again, over and over until Redis is back; here the
worker itself waits instead, retrying with a growing pause (0.5 s doubling to 2 s),
and goes on with the same process once Redis answers. Consumers already outlive a
failure of theirs (Worker.run catches and logs it; catch_client_error answers the socket).
"""

import logging
import time
from typing import Any, Tuple

import redis

from channels1_kit.redis_urls import is_auth_refusal, redis_said

logger = logging.getLogger("django.channels")

# A refused password or ACL user counts as Redis trouble too: it lasts until the URL or the
# server's users are fixed, and the process should say so and wait, not exit or fail with 500.
# The site's layer raises those as ConnectionErrors (channels1_kit.redis_urls); a stock layer
# raises plain ResponseErrors, which redis_trouble() tells from a bad command by their message.
REDIS_ERRORS: Tuple[type, ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.AuthenticationError,
)


def redis_trouble(error: BaseException) -> bool:
    """Whether error means Redis cannot be used as configured, rather than a bug or a bad command.

    Use as `except redis.exceptions.RedisError as error: if not redis_trouble(error): raise`.
    """
    return isinstance(error, REDIS_ERRORS) or (
        isinstance(error, redis.exceptions.ResponseError) and is_auth_refusal(error)
    )


FIRST_PAUSE = 0.5
LONGEST_PAUSE = 2.0


class OutageTolerantLayer:
    """The worker's channel layer, with a blocking receive that waits out Redis errors.

    Only the worker loop's own receive (block=True) is changed: a consumer's non-blocking
    receive (enforce_ordering's requeue) still raises, so that its failure is seen.
    """

    def __init__(self, layer, *, sleep=time.sleep):
        self._layer = layer
        self._sleep = sleep
        self.failures = 0
        self.outages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __str__(self) -> str:
        return str(self._layer)

    def receive_many(self, channels, block=False):
        if not block:
            return self._layer.receive_many(channels, block=block)
        try:
            received = self._layer.receive_many(channels, block=True)
        except redis.exceptions.RedisError as error:
            if not redis_trouble(error):
                raise
            self.failures += 1
            pause = min(FIRST_PAUSE * 2 ** (self.failures - 1), LONGEST_PAUSE)
            if self.failures == 1:
                self.outages += 1
                logger.warning(
                    "Redis unreachable (%s): waiting for it, retrying every %.1f-%.0f s",
                    redis_said(error),
                    pause,
                    LONGEST_PAUSE,
                )
            self._sleep(pause)
            return None, None
        if self.failures:
            logger.info("Redis reachable again after %d failed receive(s): back to work", self.failures)
            self.failures = 0
        return received

    receive = receive_many


def tolerate_redis_outages(sender, **kwargs) -> None:
    """worker_process_ready receiver: gives the worker (and its --threads siblings) the layer above."""
    for worker in [sender, *getattr(sender, "workers", [])]:
        if not isinstance(worker.channel_layer, OutageTolerantLayer):
            worker.channel_layer = OutageTolerantLayer(worker.channel_layer)
