"""channels1_kit.periodic: a worker's chore thread says once that Redis stopped it, and once that it resumed."""

import logging
import threading

import redis

from channels1_kit import periodic
from tools.processes import wait_until


def test_a_chore_says_once_that_it_pauses_for_redis_and_once_that_it_resumes(caplog):
    turns = []

    def work():
        turns.append(len(turns))
        if len(turns) <= 5:
            raise redis.exceptions.AuthenticationError("WRONGPASS invalid username-password pair")
        if len(turns) == 6:
            return
        raise RuntimeError("a bug")

    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="channels1_kit.periodic"):
        thread = periodic.start("test chore", work, interval=0.01, stop=stop)
        try:
            wait_until(lambda: len(turns) >= 8, timeout=10, interval=0.01, message="eight turns")
        finally:
            stop.set()
            thread.join(5)
    assert not thread.is_alive()

    said = [record.getMessage() for record in caplog.records if record.name == "channels1_kit.periodic"]
    paused = [line for line in said if "paused" in line]
    assert paused == ["test chore paused while Redis cannot be used (AuthenticationError)"]
    # The reason (and the password's refusal) is the worker's own line to say, once per outage.
    assert not any("WRONGPASS" in line for line in said)
    assert said.count("test chore resumed: Redis can be used again") == 1
    # Any other failure is logged, with its traceback, every time, and the thread goes on.
    assert said.count("test chore failed") >= 2
