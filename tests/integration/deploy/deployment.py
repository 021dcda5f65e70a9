"""deploy/supervisor as a server runs it: `deploy/supervisor/sitectl serve` reading an env file.

The test plays the operator: it writes the env file, runs migrate and collectstatic (the
release step), starts supervisord through sitectl, and scales or restarts programs with
sitectl's supervisorctl commands.
"""

import subprocess
import time
from pathlib import Path
from typing import Dict, List

from tests.integration.deploy.servers import Site, kill_marked
from tools.processes import REPO, VENV_BIN, Process, free_port, wait_for_healthz

SITECTL = REPO / "deploy" / "supervisor" / "sitectl"


class SupervisorDeployment:
    def __init__(
        self,
        site: Site,
        *,
        daphnes: int = 2,
        workers: int = 2,
        websocket_workers: int = 1,
        spare_workers: int = 2,
        gunicorn_workers: int = 2,
    ):
        self.site = site
        self.var = site.workdir / "var"
        self.daphne_port = free_port()
        self.gunicorn_port = free_port()
        self.pools = {"daphne": daphnes, "worker": workers, "worker-websocket": websocket_workers}
        self.spare_workers = spare_workers
        self.env_file = site.write_env_file(
            site.workdir / "site.env",
            SITE_VAR=str(self.var),
            # The virtualenv running the tests, wherever the checkout is.
            SITE_VENV=str(VENV_BIN.parent),
            DAPHNE_BIND=f"127.0.0.1:{self.daphne_port}",
            DAPHNE_PROCESSES=str(daphnes),
            WORKER_PROCESSES=str(workers),
            WEBSOCKET_WORKER_PROCESSES=str(websocket_workers),
            SPARE_WORKER_PROCESSES=str(spare_workers),
            GUNICORN_BIND=f"127.0.0.1:{self.gunicorn_port}",
            GUNICORN_WORKERS=str(gunicorn_workers),
        )
        self.process = None

    @property
    def env(self) -> dict:
        return self.site.env(SITE_ENV_FILE=str(self.env_file))

    @property
    def daphne_bind(self) -> str:
        return f"127.0.0.1:{self.daphne_port}"

    @property
    def gunicorn_bind(self) -> str:
        return f"127.0.0.1:{self.gunicorn_port}"

    def expected_running(self) -> List[str]:
        names = [f"{pool}:{pool}-{n}" for pool, count in self.pools.items() for n in range(count)]
        return names + ["gunicorn"]

    def spare_names(self) -> List[str]:
        return [f"worker-spare:worker-spare-{n}" for n in range(self.spare_workers)]

    # -- operating it ---------------------------------------------------------------------

    def start(self) -> "SupervisorDeployment":
        # The release step, as on any deploy: before gunicorn starts, since WhiteNoise
        # indexes the static root once, at startup.
        self.site.manage("migrate", "--noinput", "-v", "0")
        self.site.manage("collectstatic", "--noinput", "-v", "0")
        self.process = Process("sitectl-serve", [str(SITECTL), "serve"], env=self.env, log_dir=self.site.workdir)
        self.wait_until_running(self.expected_running(), timeout=90)
        self.wait_until_serving()
        return self

    def sitectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SITECTL), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """A sitectl command that must succeed; returns its output."""
        result = self.sitectl(*args, timeout=timeout)
        assert result.returncode == 0, f"sitectl {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
        return result.stdout

    def status(self) -> Dict[str, str]:
        # `status` exits 3 while some program is not running; its output is what counts.
        out = self.sitectl("status", timeout=30).stdout
        return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}

    def pids(self, names: List[str]) -> Dict[str, int]:
        return {name: int(self.ctl("pid", name).strip()) for name in names}

    def wait_until_running(self, names: List[str], timeout: float = 60) -> Dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and not self.process.alive():
                raise RuntimeError(f"supervisord exited:\n{self.process.tail()}\n{self.logs()}")
            status = self.status()
            if all(status.get(name) == "RUNNING" for name in names):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all of {names} RUNNING: {status}\n{self.logs()}")
            time.sleep(0.5)

    def wait_until_serving(self, timeout: float = 60) -> None:
        """Until /healthz asked of the daphne pool came back from a worker (http.request)."""
        wait_for_healthz(f"http://{self.daphne_bind}", timeout=timeout, describe=self.logs)

    def stop(self) -> List[int]:
        """Stops supervisord (and so every program); returns the pids that had to be killed after."""
        if self.process is not None:
            self.process.stop(timeout=90)
        return kill_marked(self.site.marker)

    def logs(self, lines: int = 25) -> str:
        parts = []
        for path in sorted(Path(self.var, "log").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)
