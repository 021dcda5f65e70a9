"""The site's database settings: SQLite that several workers and gunicorn can write at once."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def database_options(tmp_path: Path, url: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(DJANGO_SETTINGS_MODULE="project.settings.test", DATABASE_URL=url, VAR_DIR=str(tmp_path))
    code = "import json; from django.conf import settings; print(json.dumps(settings.DATABASES['default']))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def test_sqlite_takes_the_write_lock_first_waits_for_it_and_runs_in_wal(tmp_path):
    database = database_options(tmp_path, f"sqlite:///{tmp_path}/db.sqlite3")
    assert database["OPTIONS"] == {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL",
    }
    # tests/kit/test_sqlite.py shows what those options do to two overlapping writers.


def test_postgresql_gets_none_of_sqlites_options(tmp_path):
    database = database_options(tmp_path, "postgres://site@127.0.0.1:1/site")
    assert "transaction_mode" not in database.get("OPTIONS", {})
