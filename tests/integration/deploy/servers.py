"""Servers the deployment tests need beside the site: a private PostgreSQL, and the site's environment.

Nothing here touches the machine's own PostgreSQL or Redis: the cluster is initdb'd into a
temporary directory, listens on a free port (or on a namespace's address), keeps its
socket in that directory, and is removed with it.
"""

import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from tests.support.prerequisites import require
from tools.processes import (
    REPO,
    VENV_BIN,
    Process,
    free_port,
    pids_by_environment,
    wait_for_healthz,
    wait_for_port,
)

# Variables of the test's own environment that would configure the site if inherited.
SITE_PREFIXES = ("DJANGO_", "PYTEST_", "CHANNEL_LAYER_")
SITE_VARIABLES = ("REDIS_URL", "DATABASE_URL", "PORT", "SITE_ENV_FILE", "VAR_DIR", "MONITORING_TOKEN")

# Every process a deployment test starts carries this variable, so the test can find
# (and, as a last resort, kill) whatever one of them left behind.
MARKER = "DEPLOY_TEST_MARKER"


def require_root() -> None:
    require(os.geteuid() == 0, "the deployment tests need root (runuser, nginx, network namespaces)")


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    require(path is not None, f"no {name} on this machine: apt-get install {package}")
    return path


def postgres_bin() -> Path:
    """Debian's PostgreSQL server binaries (POSTGRES_BIN overrides), the newest version installed."""
    override = os.environ.get("POSTGRES_BIN")
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")
    found = [Path(path) for path in candidates if (Path(path) / "initdb").exists()]
    require(bool(found), "no PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql")
    return max(found, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)


def processes_marked(marker: str) -> List[int]:
    """Pids of live processes whose environment carries MARKER=marker."""
    return pids_by_environment(lambda environ: environ.get(MARKER) == marker)


def kill_marked(marker: str) -> List[int]:
    """Kills what a test left behind; returns the pids it had to kill."""
    leftovers = processes_marked(marker)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return leftovers


def shared_tmpdir(prefix: str) -> Path:
    """A temporary directory other users may traverse: postgres and nginx's workers read under it.

    pytest's tmp_path lives under a 0700 directory of the user running the tests.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_unless_kept(path: Path) -> None:
    """Removes a test's directory, unless DEPLOY_TEST_KEEP is set to read its logs afterwards."""
    if os.environ.get("DEPLOY_TEST_KEEP"):
        print(f"kept {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


class PostgresCluster:
    """A throwaway PostgreSQL cluster owned by the `postgres` user, with trust authentication.

    `exec_prefix` runs it elsewhere, e.g. ["ip", "netns", "exec", NAME] for a namespaced host;
    `trust_networks` are the CIDRs, beyond loopback, that may connect.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        exec_prefix: Sequence[str] = (),
        trust_networks: Iterable[str] = (),
        env: Optional[dict] = None,
    ):
        self.host = host
        self.port = port or free_port()
        self.exec_prefix = list(exec_prefix)
        self.trust_networks = list(trust_networks)
        self.env = env or dict(os.environ)
        self.bin = postgres_bin()
        self.dir: Optional[Path] = None
        self.process: Optional[Process] = None

    def _as_postgres(self, *args: str) -> List[str]:
        return ["runuser", "-u", "postgres", "--", *args]

    def start(self) -> "PostgresCluster":
        require_binary("runuser", "util-linux")
        self.dir = shared_tmpdir("deploy-pg-")
        shutil.chown(self.dir, user="postgres")
        data = self.dir / "data"
        subprocess.run(
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        with open(data / "pg_hba.conf", "a") as hba:
            for network in self.trust_networks:
                hba.write(f"host all all {network} trust\n")
        # Durability off: a test database is thrown away, and fsyncs cost the 2-core machine.
        settings = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        settings += ["-c", "max_connections=200", "-c", "listen_addresses=" + self.host]
        self.process = Process(
            "postgres",
            [
                *self.exec_prefix,
                *self._as_postgres(str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port)),
                "-k",
                str(self.dir),
                *settings,
            ],
            env=self.env,
            log_dir=self.dir,
        )
        wait_for_port(self.port, host=self.host, timeout=30, process=self.process)
        return self

    def _admin(self, sql: str, timeout: float = 30.0) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = psycopg2.connect(
                    host=self.host, port=self.port, user="postgres", dbname="postgres", connect_timeout=5
                )
                break
            except psycopg2.OperationalError:
                # Listening comes a moment before accepting queries ("starting up").
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
        connection.close()

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, name: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            self.process.stop(signum=signal.SIGINT, timeout=30)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self) -> str:
        return self.process.tail() if self.process else ""


class Site:
    """The site's environment as a production deployment has it (project.settings.prod)."""

    def __init__(self, workdir: Path, *, database_url: str, redis_url: str, allowed_hosts: str = "127.0.0.1"):
        self.workdir = workdir
        self.marker = str(workdir)
        self.static_root = workdir / "static"
        self.monitoring_token = secrets.token_urlsafe(24)
        self.values = {
            "DJANGO_SETTINGS_MODULE": "project.settings.prod",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DJANGO_ALLOWED_HOSTS": allowed_hosts,
            "DJANGO_STATIC_ROOT": str(self.static_root),
            # The tests speak plain HTTP; behind TLS these stay on (the default).
            "DJANGO_SECURE_COOKIES": "0",
            "MONITORING_TOKEN": self.monitoring_token,
            "PYTHONUNBUFFERED": "1",
        }

    def bare_env(self, **extra: str) -> dict:
        """A process environment without the site's values: the test's own, less anything that
        would configure the site, plus the marker. Whatever starts from it reads an env file."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(SITE_PREFIXES)}
        for key in (*SITE_VARIABLES, *self.values):
            env.pop(key, None)
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        env[MARKER] = self.marker
        env.update(extra)
        return env

    def env(self, **extra: str) -> dict:
        """The whole environment of a process of this site: bare_env plus the site's values."""
        return self.bare_env(**{**self.values, **extra})

    def write_env_file(self, path: Path, **extra: str) -> Path:
        """The site's values as a .env file, the format honcho and sitectl read."""
        path.write_text("".join(f"{key}={value}\n" for key, value in {**self.values, **extra}.items()))
        return path

    def manage(self, *args: str, env: Optional[dict] = None, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=REPO,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result

    def django(self, code: str):
        """Runs Python in a Django shell of the site; returns the JSON its last line printed."""
        # --no-imports: Django 5.2's shell otherwise prints a line about the models it imports.
        out = self.manage("shell", "--no-imports", "-c", code).stdout.strip().splitlines()
        return json.loads(out[-1]) if out else None


# -- The Procfile under honcho, as a platform runs it ---------------------------------------------

PROCFILE = REPO / "Procfile"


def honcho(*args: str) -> List[str]:
    """`honcho start -f Procfile ARGS`: the shipped Procfile, nothing added."""
    return [str(VENV_BIN / "honcho"), "start", "-f", str(PROCFILE), *args]


def procfile_release(env_file: Path, env: dict) -> None:
    """The release process alone, to its end, as a platform runs it before the new processes start."""
    release = subprocess.run(
        honcho("-e", str(env_file), "release"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert release.returncode == 0, release.stdout + release.stderr


def procfile_start(env_file: Path, env: dict, log_dir: Path, *, port: int, workers: int = 1) -> tuple:
    """web=1 and `workers` workers under one honcho; (process, http base, ws base) once daphne answers
    /healthz through a worker. The caller stops the process."""
    web = Process(
        "honcho",
        honcho("-e", str(env_file), "-c", f"web=1,worker={workers}", "web", "worker"),
        # As Heroku's Python runtime sets it. It matters to honcho here: its SIGTERM handler prints
        # to the stdout its loop prints the processes' lines to, and a signal landing mid-line
        # made the buffered writer raise ("reentrant call"), which killed honcho's loop before it
        # stopped anything (a test's SIGTERM, once in CI). Unbuffered, stdout has no such guard.
        env={**env, "PYTHONUNBUFFERED": "1"},
        log_dir=log_dir,
    )
    try:
        wait_for_port(port, timeout=60, process=web)
        base = f"http://127.0.0.1:{port}"
        wait_for_healthz(base, timeout=60, describe=web.tail)
    except BaseException:
        web.stop()
        raise
    return web, base, f"ws://127.0.0.1:{port}"
