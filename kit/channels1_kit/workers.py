"""How a `manage.py runworker` process stops: never between taking a message and handling it.

Channels 1's worker exits from inside its SIGTERM handler when it is not running a
consumer. It then is usually blocked in the channel layer's receive, and a message that
Redis has just handed over (a BLPOP reply, or the TAKE that follows it) is lost with the
process: a chat frame or a websocket.connect that no other worker will ever see. Here the
first SIGTERM or SIGINT only asks the loop to stop, so the worker finishes the message in
hand, or returns from its receive (at most the layer's blpop_timeout, 5 seconds) with or
without one, handles it, and exits. A second signal exits at once. supervisord's
stopwaitsecs and Heroku's 30 seconds leave room for both.
"""

import logging
import sys

logger = logging.getLogger("django.channels")


def stop_after_message_in_hand(sender, **kwargs) -> None:
    """worker_process_ready receiver: gives the worker (sender) the graceful SIGTERM handler."""
    worker = sender
    # A --threads worker (WorkerGroup) runs the others in daemon threads: all stop together.
    workers = [worker, *getattr(worker, "workers", [])]

    def stop(signo, frame) -> None:
        if worker.termed:
            logger.info("Second shutdown signal: exiting now")
            sys.exit(0)
        logger.info("Shutdown signal received: finishing the message in hand, then exiting")
        for each in workers:
            each.termed = True

    # Worker.run() installs self.sigterm_handler for SIGTERM and SIGINT.
    worker.sigterm_handler = stop
    if len(workers) > 1:
        run = worker.run

        def run_then_wait_for_threads() -> None:
            run()
            for thread in getattr(worker, "threads", []):
                thread.join()

        worker.run = run_then_wait_for_threads
