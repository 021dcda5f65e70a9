"""The Procfile, run the Heroku way by honcho: configuration only from an env file.

The release command runs first (migrate, collectstatic), then one web process (daphne on
$PORT, serving pages through the workers too) and two workers, against a real Redis and a
real PostgreSQL. Nothing of the site's configuration is in the processes' environment
except what the env file gives them.
"""

import signal
import time

import requests

from tests.integration.deploy.servers import (
    Site,
    kill_marked,
    processes_marked,
    procfile_release,
    procfile_start,
    remove_unless_kept,
    shared_tmpdir,
)
from tests.integration.deploy.traffic import check_chat, check_liveblog, seed
from tools.processes import RedisServer, free_port


def test_procfile_release_web_and_two_workers_under_honcho_serve_the_liveblog_and_chat(fresh_database):
    workdir = shared_tmpdir("deploy-procfile-")
    redis = RedisServer(workdir)
    site = Site(workdir, database_url=fresh_database(), redis_url=redis.url)
    port = free_port()
    env_file = site.write_env_file(workdir / ".env", PORT=str(port))
    env = site.bare_env()
    web = None
    try:
        redis.start()
        procfile_release(env_file, env)
        assert (site.static_root / "admin" / "css" / "base.css").exists(), "release should collect static files"

        web, base, ws = procfile_start(env_file, env, workdir, port=port, workers=2)

        seed(site, users=["alice", "bob"], rooms=["procfile"], liveblogs=["procfile"])
        check_liveblog(site, "procfile", [ws], per_base=3)
        check_chat(base, [ws], "procfile", {"alice": "alicealice", "bob": "bobbob"})

        # Without a web server in front, the workers serve static files (WhiteNoise over
        # what the release collected).
        static = requests.get(f"{base}/static/admin/css/base.css", timeout=10)
        assert static.status_code == 200
        assert static.content == (site.static_root / "admin" / "css" / "base.css").read_bytes()

        # Each of the two workers says what it listens on once Django is set up.
        deadline = time.monotonic() + 60
        while web.log_path.read_text(errors="replace").count("Listening on channels") < 2:
            assert time.monotonic() < deadline, f"two workers should be listening:\n{web.tail()}"
            time.sleep(0.2)
        output = web.log_path.read_text(errors="replace")
        for name in ("web.1", "worker.1", "worker.2"):
            assert name in output, f"honcho should have run {name}:\n{output[-2000:]}"
        assert output.count("Listening on channels") == 2

        # Ctrl-C, or the platform stopping the dynos: everything goes.
        web.send_signal(signal.SIGTERM)
        web.popen.wait(60)
        deadline = time.monotonic() + 30
        while processes_marked(site.marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_marked(site.marker) == []
    finally:
        if web is not None:
            web.stop()
        kill_marked(site.marker)
        redis.stop()
        remove_unless_kept(workdir)
