"""`make run`'s stack (tools/stack.py under supervisord), started and stopped as a user would."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.integration.clients import Socket
from tools.processes import REPO, VENV_BIN, free_port, pids_by_environment, wait_for_port

EXPECTED_PROGRAMS = {"redis", "daphne-0", "daphne-1", "worker-0", "worker-1", "gunicorn", "frontdoor"}


def processes_mentioning(marker: str) -> list:
    """Pids of live processes whose environment names marker."""
    return pids_by_environment(lambda environ: any(marker in f"{name}={value}" for name, value in environ.items()))


@pytest.fixture
def make_run_stack(tmp_path):
    port = free_port()
    # As on a fresh shell: make run picks its own Redis, database and (dev) settings.
    unset = ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(PORT=str(port), SITE_VAR=str(tmp_path), VAR_DIR=str(tmp_path), STACK_TEST_MARKER=str(tmp_path))
    log = open(tmp_path / "stack.out", "wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "tools.stack"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60)
        yield {"port": port, "process": process, "var": tmp_path}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in processes_mentioning(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
        log.close()


def supervisor_status(var: Path) -> dict:
    result = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(var / "run" / "supervisord.conf"), "status"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    # Pool members are listed as group:name.
    return {line.split()[0].rpartition(":")[2]: line.split()[1] for line in result.stdout.splitlines() if line.strip()}


def wait_until_running(var: Path, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = supervisor_status(var)
        if all(status.get(name) == "RUNNING" for name in EXPECTED_PROGRAMS):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"programs not all RUNNING: {status}")
        time.sleep(0.5)


def test_make_run_serves_the_demo_with_every_process_and_ctrl_c_leaves_nothing(make_run_stack):
    port, var = make_run_stack["port"], make_run_stack["var"]
    wait_until_running(var)

    base = f"http://127.0.0.1:{port}"
    assert "Demo liveblog" in requests.get(f"{base}/liveblog/demo/", timeout=10).text
    assert requests.get(f"{base}/static/admin/css/base.css", timeout=10).status_code == 200

    stream = Socket(f"ws://127.0.0.1:{port}/liveblog/demo/stream/")
    env = {**os.environ, "VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var}/db.sqlite3"}
    env["REDIS_URL"] = next(
        line.split()[-1] for line in (var / "stack.out").read_text().splitlines() if line.strip().startswith("Redis:")
    )
    subprocess.run(
        [
            str(VENV_BIN / "python"),
            "manage.py",
            "shell",
            "-c",
            "from liveblog import services, selectors\n"
            "services.post_create(liveblog=selectors.liveblog_get(slug='demo'), body='through make run')",
        ],
        cwd=REPO,
        env=env,
        check=True,
        timeout=60,
    )
    assert stream.recv_until(lambda f: f.get("type") == "post.created")["post"]["body"] == "through make run"
    stream.close()

    assert processes_mentioning(str(var)), "the stack's processes should carry its marker"
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(make_run_stack["process"].pid, signal.SIGINT)
    make_run_stack["process"].wait(60)
    deadline = time.monotonic() + 30
    while processes_mentioning(str(var)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(var)) == []
