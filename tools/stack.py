"""Starts the whole site on one machine under supervisord: `make run`.

Redis (unless REDIS_URL is given), a pool of daphne processes sharing one socket,
runworker processes, gunicorn, and the front door on PORT that sends WebSockets to daphne
and the rest to gunicorn. It migrates and seeds the demo data first. Ctrl-C stops it all.
"""

import os
import pwd
import subprocess
import sys
from pathlib import Path

from channels1_kit.redis_urls import mask
from tools.waits import free_port

SITE_DIR = Path(__file__).resolve().parent.parent
SUPERVISOR_DIR = SITE_DIR / "deploy" / "supervisor"


def stack_environment(base: dict) -> dict:
    env = dict(base)
    env.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.dev")
    # daphne and gunicorn would each read PORT; the front door alone owns it.
    port = env.pop("PORT", "") or "8000"
    env.setdefault("SITE_DIR", str(SITE_DIR))
    env.setdefault("SITE_VENV", sys.prefix)
    env.setdefault("SITE_VAR", str(SITE_DIR / "var"))
    env.setdefault("DAPHNE_PROCESSES", "2")
    env.setdefault("WORKER_PROCESSES", "2")
    # deploy/supervisor/site.conf's other pools; a laptop needs neither.
    env.setdefault("WEBSOCKET_WORKER_PROCESSES", "0")
    env.setdefault("SPARE_WORKER_PROCESSES", "0")
    env.setdefault("SITE_USER", pwd.getpwuid(os.getuid()).pw_name)
    env.setdefault("GUNICORN_WORKERS", "2")
    # Ctrl-C on a laptop stops at once; a server's daphnes drain their sockets over 20 s
    # (deploy/supervisor/site.conf, channels1_kit/drain.py).
    env.setdefault("DAPHNE_DRAIN_SECONDS", "1")
    env.setdefault("FRONTDOOR_BIND", f"127.0.0.1:{port}")
    env.setdefault("DAPHNE_BIND", f"127.0.0.1:{free_port()}")
    env.setdefault("GUNICORN_BIND", f"127.0.0.1:{free_port()}")
    if not env.get("REDIS_URL"):
        env.setdefault("REDIS_SERVER", str(SITE_DIR / ".venv-redis" / "bin" / "redis-server"))
        env["REDIS_PORT"] = str(free_port())
        env["REDIS_URL"] = f"redis://127.0.0.1:{env['REDIS_PORT']}/0"
    return env


def supervisord_config(env: dict) -> Path:
    var = Path(env["SITE_VAR"])
    for folder in ("log", "run"):
        (var / folder).mkdir(parents=True, exist_ok=True)
    includes = [SUPERVISOR_DIR / "site.conf", SUPERVISOR_DIR / "frontdoor.conf"]
    if env.get("REDIS_SERVER") and env.get("REDIS_PORT"):
        includes.insert(0, SUPERVISOR_DIR / "redis.conf")
    config = var / "run" / "supervisord.conf"
    config.write_text(
        f"""; Written by tools/stack.py; edit deploy/supervisor/*.conf instead.
[supervisord]
nodaemon=true
logfile={var}/log/supervisord.log
pidfile={var}/run/supervisord.pid
childlogdir={var}/log

[unix_http_server]
file={var}/run/supervisor.sock

[supervisorctl]
serverurl=unix://{var}/run/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[include]
files = {" ".join(str(path) for path in includes)}
"""
    )
    return config


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=env["SITE_DIR"], env=env, check=True)


def main() -> None:
    env = stack_environment(os.environ)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "seed_demo")
    config = supervisord_config(env)
    print(
        f"""
  The site:        http://{env['FRONTDOOR_BIND']}/   (front door: WebSockets -> daphne, pages -> gunicorn)
  daphne pool:     {env['DAPHNE_PROCESSES']} processes on {env['DAPHNE_BIND']} (HTTP + WebSocket, --fd 0)
  runworker:       {env['WORKER_PROCESSES']} processes
  gunicorn:        {env['GUNICORN_WORKERS']} workers on {env['GUNICORN_BIND']}
  Redis:           {', '.join(mask(url.strip()) for url in env['REDIS_URL'].split(','))}
  logs:            {env['SITE_VAR']}/log/
  Ctrl-C stops everything.
""",
        flush=True,
    )
    os.execvpe(
        str(Path(env["SITE_VENV"]) / "bin" / "supervisord"),
        ["supervisord", "-c", str(config)],
        env,
    )


if __name__ == "__main__":
    main()
