"""The whole site as real processes: Redis, daphne, runworker and gunicorn, on loopback ports.

The integration tests and the benchmark both start it; login_cookie logs a user in to it.

Each daphne gets its own port so a test can put clients on a chosen interface server.
The database is a fresh SQLite file, or a fresh database on the PostgreSQL server that
DATABASE_URL names when it is a postgres:// URL.
"""

import contextlib
import json
import os
import secrets
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlparse, urlunparse

import requests

from tools.processes import (
    REPO,
    VENV_BIN,
    Process,
    RedisServer,
    free_port,
    wait_for_healthz,
    wait_for_port,
)

DEFAULT_LAYER = os.environ.get("CHANNEL_LAYER_BACKEND", "")


def login_cookie(base_url: str, username: str, password: str) -> str:
    """Logs in through the real login page; returns the Cookie header a browser would send."""
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, f"login failed for {username}: {response.status_code}"
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


class FreshDatabase:
    """A database made for one stack and dropped after it."""

    def __init__(self, workdir: Path):
        base = os.environ.get("DATABASE_URL", "")
        self.postgres = base.startswith(("postgres://", "postgresql://"))
        if self.postgres:
            parsed = urlparse(base)
            self.name = f"it_{uuid.uuid4().hex[:12]}"
            self.admin_url = base
            self.url = urlunparse(parsed._replace(path="/" + self.name))
        else:
            self.url = f"sqlite:///{workdir / 'db.sqlite3'}"

    def _admin(self, sql: str) -> None:
        import psycopg2

        parsed = urlparse(self.admin_url)
        connection = psycopg2.connect(
            dbname=parsed.path.lstrip("/") or "postgres",
            user=parsed.username,
            password=parsed.password,
            host=parsed.hostname,
            port=parsed.port or 5432,
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
        connection.close()

    def create(self) -> None:
        if self.postgres:
            self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        daphnes: int = 2,
        workers: int = 2,
        layer: str = DEFAULT_LAYER,
        settings: Optional[Dict[str, str]] = None,
        site: Path = REPO,
        venv_bin: Path = VENV_BIN,
    ):
        """`site` and `venv_bin`: the checkout of the site to run and its virtualenv's bin (make
        bench runs stock asgi_redis under an earlier release of this site, bench/targets.py)."""
        self.site = site
        self.venv_bin = venv_bin
        self.workdir = workdir
        # Environment variables the site's settings read (project/settings/base.py), for every process.
        self.settings = dict(settings or {})
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.redis = RedisServer(self.log_dir)
        self.database = FreshDatabase(workdir)
        self.daphne_count = daphnes
        self.worker_count = workers
        self.daphnes: List[Process] = []
        self.daphne_ports: List[int] = []
        self.workers: List[Process] = []
        self.gunicorn: Optional[Process] = None
        self.gunicorn_port = free_port()
        self.frontdoors: List[Process] = []
        self.frontdoor_ports: List[int] = []
        self.layer = layer
        self.secret_key = secrets.token_urlsafe(40)

    # -- environment ------------------------------------------------------------------

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="project.settings.test",
            DJANGO_SECRET_KEY=self.secret_key,
            DATABASE_URL=self.database.url,
            REDIS_URL=self.redis.url,
            VAR_DIR=str(self.workdir),
            # DEBUG is off, so WhiteNoise serves only what collectstatic put here.
            DJANGO_STATIC_ROOT=str(self.workdir / "static"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("PORT", None)
        # A test's teardown stops daphnes with SIGTERM: it need not wait out a production drain
        # (20 s) for the sockets a test left open. tests/integration/test_drain.py sets its own.
        env["DAPHNE_DRAIN_SECONDS"] = "1"
        if self.layer:
            env["CHANNEL_LAYER_BACKEND"] = self.layer
        env.update(self.settings)
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.venv_bin / "python"), "manage.py", *args],
            cwd=self.site,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def django(self, code: str):
        """Runs Python in a Django shell against the stack; returns what the code printed as JSON."""
        # --no-imports: Django 5.2's shell otherwise prints a line about the models it imports.
        result = self.manage("shell", "--no-imports", "-c", code)
        out = result.stdout.strip().splitlines()
        return json.loads(out[-1]) if out else None

    # -- processes ----------------------------------------------------------------------

    def start(self) -> "Stack":
        self.redis.start()
        self.database.create()
        self.manage("migrate", "--noinput", "-v", "0")
        # Before gunicorn starts: WhiteNoise indexes STATIC_ROOT once, at startup.
        self.manage("collectstatic", "--noinput", "-v", "0")
        for _ in range(self.daphne_count):
            self.add_daphne()
        for _ in range(self.worker_count):
            self.add_worker()
        self.start_gunicorn()
        self.wait_until_serving()
        return self

    def add_daphne(self) -> Process:
        port = free_port()
        index = len(self.daphnes)
        process = Process(
            f"daphne-{index}",
            [str(self.venv_bin / "daphne"), "-b", "127.0.0.1", "-p", str(port), "project.asgi:channel_layer"],
            env=self.env,
            log_dir=self.log_dir,
            cwd=self.site,
        )
        wait_for_port(port, process=process)
        self.daphnes.append(process)
        self.daphne_ports.append(port)
        return process

    def add_worker(self, *extra_args: str) -> Process:
        process = Process(
            f"worker-{len(self.workers)}",
            [str(self.venv_bin / "python"), "manage.py", "runworker", *extra_args],
            env=self.env,
            log_dir=self.log_dir,
            cwd=self.site,
        )
        self.workers.append(process)
        return process

    def start_gunicorn(self) -> None:
        self.gunicorn = Process(
            "gunicorn",
            [
                str(self.venv_bin / "gunicorn"),
                "project.wsgi",
                "--bind",
                f"127.0.0.1:{self.gunicorn_port}",
                "--workers",
                "2",
            ],
            env=self.env,
            log_dir=self.log_dir,
            cwd=self.site,
        )
        wait_for_port(self.gunicorn_port, process=self.gunicorn)

    def add_frontdoor(self, *, daphne: int = 0) -> int:
        """One origin for a browser: pages from gunicorn, WebSockets to the chosen daphne."""
        port = free_port()
        process = Process(
            f"frontdoor-{len(self.frontdoors)}",
            [
                str(VENV_BIN / "python"),
                "-m",
                "tools.frontdoor",
                "--listen",
                f"127.0.0.1:{port}",
                "--websocket",
                f"127.0.0.1:{self.daphne_ports[daphne]}",
                "--http",
                f"127.0.0.1:{self.gunicorn_port}",
            ],
            env=self.env,
            log_dir=self.log_dir,
        )
        wait_for_port(port, process=process)
        self.frontdoors.append(process)
        self.frontdoor_ports.append(port)
        return port

    @contextlib.contextmanager
    def frontdoor_down(self, index: int):
        """Front door `index` stopped for the with block (its sockets drop), then up again on its port."""
        stopped = self.frontdoors[index]
        stopped.stop()
        try:
            yield
        finally:
            process = Process(stopped.name, stopped.args, env=self.env, log_dir=self.log_dir)
            self.frontdoors[index] = process
            wait_for_port(self.frontdoor_ports[index], process=process)

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        """Until a request through each daphne has come back from a worker."""
        deadline = time.monotonic() + timeout
        for port in self.daphne_ports:
            remaining = max(deadline - time.monotonic(), 0.1)
            wait_for_healthz(f"http://127.0.0.1:{port}", timeout=remaining, describe=self.logs)

    def stop(self) -> None:
        for process in [*self.frontdoors, *self.daphnes, *self.workers, self.gunicorn]:
            if process is not None:
                process.stop()
        self.redis.stop()
        self.database.drop()

    def logs(self, lines: int = 30) -> str:
        processes = [*self.frontdoors, *self.daphnes, *self.workers, self.gunicorn, self.redis.process]
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in processes if p is not None)

    # -- addresses ------------------------------------------------------------------------

    def ws_url(self, path: str, daphne: int = 0) -> str:
        return f"ws://127.0.0.1:{self.daphne_ports[daphne]}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.gunicorn_port}{path}"

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
