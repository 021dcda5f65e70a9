"""The integration stack, with the faults a production site meets: Redis restarting empty on
its port, processes killed with SIGKILL, and a process manager that starts them again.

FaultStack composes tools/site_stack.Stack (which it does not change): the same
processes on loopback ports, plus environment overrides (short heartbeat and sweep
periods, say), a Driver process that saves through the apps' services, and a Supervisor
thread that does what supervisord's autorestart does.
"""

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import requests

from tools.processes import REPO, VENV_BIN, Process, wait_for_port
from tools.site_stack import Stack

# Short periods so that a test sees in seconds what production sees in a minute.
FAST_FAULT_SETTINGS = {
    "SOCKET_HEARTBEAT_SECONDS": "1",
    "SOCKET_SWEEP_SECONDS": "2",
    "SOCKET_CLOCK_SKEW_SECONDS": "1",
    "WEBSOCKET_ORDER_STALL_SECONDS": "5",
    # The tests send faster than a person types; the limits have tests of their own (chat's
    # here, daphne's frame budget in tests/integration/test_floods.py).
    "CHAT_RATE_LIMIT_MESSAGES": "1000",
    "WEBSOCKET_FRAME_BURST": "1000",
    "WEBSOCKET_FRAME_RATE": "1000",
    # Every socket here comes from 127.0.0.1, a storm's 40 from a few logins, reconnecting at
    # once after each fault: the per-client budgets (tests/integration/test_client_budgets.py
    # tests them) are lifted as a load test lifts them.
    "WEBSOCKET_HANDSHAKE_RATE": "0",
    "WEBSOCKET_CLIENT_SOCKETS": "0",
    "WEBSOCKET_CLIENT_FRAME_RATE": "0",
}


class DriverError(RuntimeError):
    pass


class Driver:
    """A Django process on the stack's database and Redis (tests/integration/faults/driver.py)."""

    def __init__(self, stack: "FaultStack"):
        self.log_path = stack.log_dir / "driver.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "tests.integration.faults.driver"],
            cwd=REPO,
            env=stack.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._lock = threading.Lock()

    def __call__(self, command: str, *args, **kwargs):
        with self._lock:
            self.popen.stdin.write(json.dumps({"command": command, "args": args, "kwargs": kwargs}) + "\n")
            self.popen.stdin.flush()
            line = self.popen.stdout.readline()
        if not line:
            raise DriverError(f"the driver exited ({self.popen.poll()}); see {self.log_path}")
        answer = json.loads(line)
        if "error" in answer:
            raise DriverError(f"{command}{args}: {answer['error']}\n{answer['traceback']}")
        return answer["ok"]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


class Supervisor(threading.Thread):
    """Starts again any watched process that exits, as supervisord's autorestart=true does.

    It never starts one that the test stopped on purpose (FaultStack.stop_process).
    Each restart is recorded: (name, old pid, new pid, seconds the process was down).
    """

    def __init__(self, stack: "FaultStack", *, poll: float = 0.1):
        super().__init__(name="supervisor", daemon=True)
        self.stack = stack
        self.poll = poll
        self.restarts: List[tuple] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.poll):
            for kind, index, process in self.stack.managed():
                if process.poll() is not None and process.name not in self.stack.held_down:
                    died = time.monotonic()
                    replacement = self.stack.respawn(kind, index)
                    self.restarts.append((process.name, process.pid, replacement.pid, time.monotonic() - died))

    def halt(self) -> None:
        self._halt.set()
        self.join(5)


class FaultStack(Stack):
    def __init__(self, workdir: Path, *, settings: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(workdir, settings={**FAST_FAULT_SETTINGS, **(settings or {})}, **kwargs)
        self.held_down: set = set()
        self.driver: Optional[Driver] = None
        self.supervisor: Optional[Supervisor] = None
        self._respawn_lock = threading.Lock()

    def start(self) -> "FaultStack":
        super().start()
        self.driver = Driver(self)
        return self

    def supervise(self) -> Supervisor:
        self.supervisor = Supervisor(self)
        self.supervisor.start()
        return self.supervisor

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.halt()
        if self.driver is not None:
            self.driver.stop()
        super().stop()

    # -- processes ----------------------------------------------------------------------

    def managed(self):
        with self._respawn_lock:
            return [("daphne", i, p) for i, p in enumerate(self.daphnes)] + [
                ("worker", i, p) for i, p in enumerate(self.workers)
            ]

    def respawn(self, kind: str, index: int) -> Process:
        """Starts process `index` of `kind` again with the same command line (and port)."""
        with self._respawn_lock:
            processes = self.daphnes if kind == "daphne" else self.workers
            old = processes[index]
            old.stop(timeout=1)
            replacement = Process(old.name, old.args, env=self.env, log_dir=self.log_dir)
            processes[index] = replacement
        if kind == "daphne":
            wait_for_port(self.daphne_ports[index], process=replacement)
        return replacement

    def hold_down(self, kind: str, index: int) -> None:
        """Stops process `index` of `kind` on purpose: the supervisor leaves it stopped."""
        process = (self.daphnes if kind == "daphne" else self.workers)[index]
        self.held_down.add(process.name)
        process.stop()

    def release(self, kind: str, index: int) -> Process:
        """Starts a process held down again."""
        process = (self.daphnes if kind == "daphne" else self.workers)[index]
        replacement = self.respawn(kind, index)
        self.held_down.discard(process.name)
        return replacement

    def kill(self, kind: str, index: int) -> int:
        """SIGKILL to process `index` of `kind`; returns its pid. The supervisor, if any, restarts it."""
        process = (self.daphnes if kind == "daphne" else self.workers)[index]
        pid = process.pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def pids(self) -> Dict[str, int]:
        return {process.name: process.pid for _, _, process in self.managed()}

    def all_alive(self) -> bool:
        return all(process.alive() for _, _, process in self.managed())

    # -- Redis ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def redis_down(self):
        """Redis stopped for the with block, then started again, empty, on the same port.

        Yields a dict that gets "stopped" and "started" (time.monotonic()) filled in.
        """
        times = {}
        self.redis.stop()
        times["stopped"] = time.monotonic()
        try:
            yield times
        finally:
            self.redis.start()
            times["started"] = time.monotonic()

    def redis_keys(self) -> int:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5).dbsize()

    # -- HTTP -----------------------------------------------------------------------------

    def healthz(self, daphne: int = 0, timeout: float = 5.0) -> int:
        """The status of GET /healthz through a daphne (answered by a worker), or 0 if none came."""
        try:
            return requests.get(f"http://127.0.0.1:{self.daphne_ports[daphne]}/healthz", timeout=timeout).status_code
        except requests.RequestException:
            return 0


class AdminSession:
    """A staff user logged in to the admin through gunicorn, as an editor's browser is."""

    def __init__(self, stack: Stack, username: str, password: str):
        self.base = stack.http_url("")
        self.session = requests.Session()
        self.session.get(f"{self.base}/accounts/login/", timeout=10).raise_for_status()
        response = self.session.post(
            f"{self.base}/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": self.session.cookies["csrftoken"]},
            headers={"Referer": f"{self.base}/accounts/login/"},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, f"login failed for {username}: {response.status_code}"

    def add_post(self, liveblog_id: int, body: str) -> requests.Response:
        """Publishes a post with the admin's add form; returns the response to the POST."""
        url = f"{self.base}/admin/liveblog/post/add/"
        self.session.get(url, timeout=10).raise_for_status()
        return self.session.post(
            url,
            data={
                "csrfmiddlewaretoken": self.session.cookies["csrftoken"],
                "liveblog": str(liveblog_id),
                "body": body,
                "_save": "Save",
            },
            headers={"Referer": url},
            allow_redirects=False,
            timeout=30,
        )
