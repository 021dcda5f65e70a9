"""The kit's operations commands against a Redis that refuses the credentials: one plain line, exit 1."""

import os
import subprocess
import sys

import pytest

from tools.processes import REPO, RedisServer


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("ops-redis"), name="ops-redis", password="the-right-one") as server:
        yield server


@pytest.mark.parametrize("command", [["channel_report"], ["worker_health", "--timeout", "2"]])
def test_refused_credentials_end_an_ops_command_with_one_line_that_says_so(guarded_redis, command):
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="project.settings.dev",
        REDIS_URL=f"redis://:a-wrong-one@127.0.0.1:{guarded_redis.port}/0",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: the channel layer's Redis: ")
    assert "Redis refused the credentials: WRONGPASS" in line
    assert "a-wrong-one" not in line
