"""The one wait helper, and the ports it waits on: standard library only.

`make run`'s launcher (tools/stack.py) and the first-run check (tools/first_run.py) use these
with nothing but the runtime set, or nothing at all, installed; tools/processes.py, the
harness of the tests and the benchmark, re-exports them.
"""

import socket
import time


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Polls predicate until it returns something truthy; returns that, or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not reached within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 20.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode} before listening:\n{process.tail()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")
