"""Real processes for the tests: start them, wait until they answer, stop them, leave nothing behind."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"


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


def wait_for_healthz(base_url: str, *, timeout: float, describe=lambda: "") -> None:
    """Until GET base_url/healthz answers 200: through daphne, that is a worker's reply."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url}/healthz did not answer 200 within {timeout}s:\n{describe()}")
        time.sleep(0.1)


def redis_server_binary() -> str:
    """The redis-server that make installs into .venv-redis, unless REDIS_SERVER names another."""
    binary = os.environ.get("REDIS_SERVER") or str(REPO / ".venv-redis" / "bin" / "redis-server")
    if not Path(binary).exists():
        raise RuntimeError(f"no redis-server at {binary}: run `make deps` (or set REDIS_SERVER)")
    return binary


class Process:
    """One child process, its output in a log file, in its own process group."""

    def __init__(self, name: str, args: List[str], *, env: dict, log_dir: Path, cwd: Path = REPO):
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.popen.returncode

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signum)

    def stop(self, *, timeout: float = 15.0, signum: int = signal.SIGTERM) -> Optional[int]:
        """Asks the process to stop; kills it if it has not within timeout. Returns its exit code."""
        if self.alive():
            self.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(5)
        try:
            # Children it may have left (gunicorn's workers) share its process group.
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RedisServer:
    """A throwaway redis-server on a free loopback port that keeps nothing on disk."""

    def __init__(self, log_dir: Path, *, port: Optional[int] = None, name: str = "redis"):
        self.port = port or free_port()
        self.log_dir = log_dir
        self.name = name
        self.process: Optional[Process] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        self.process = Process(self.name, args, env=dict(os.environ), log_dir=self.log_dir)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
