"""A Heroku deploy as docs/deploying.md has it: the entry points default to the production
settings, REDIS_SSL_CERT_REQS for the rediss:// URL Heroku Redis hands out, and app.json
agreeing with the Procfile and with what the production settings require.

Each settings module is loaded in a process of its own, from an environment holding none of
the test run's own configuration."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tools.processes import REPO, VENV_BIN, free_port

APP_JSON = REPO / "app.json"
PROCFILE = REPO / "Procfile"
PROD_SETTINGS = REPO / "project" / "settings" / "prod.py"

# What configures the site; none of it may leak in from the test run (pytest-django names the
# test settings in this process's environment).
SITE_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "CHANNEL_LAYER_", "PYTEST_")
SITE_VARIABLES = ("MONITORING_TOKEN", "PORT", "VAR_DIR", "SITE_ENV_FILE")

# The config vars each add-on sets on the app.
ADDON_VARIABLES = {"heroku-postgresql": "DATABASE_URL", "heroku-redis": "REDIS_URL"}
# Heroku Redis's URL: TLS, the default user's password, a self-signed certificate.
HEROKU_REDIS_URL = "rediss://:hunter2-p%40ss@127.0.0.1:1"

PRODUCTION_SECRETS = {
    "DJANGO_SECRET_KEY": "a-production-secret-of-fifty-or-more-characters-0123456789abcdefXYZ",
    "DJANGO_ALLOWED_HOSTS": "myapp.herokuapp.com",
    # Never connected to: loading the settings and the entry points only names them.
    "DATABASE_URL": "postgres://site:pw@127.0.0.1:1/site",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}

REPORT = (
    "import json; from django.conf import settings; "
    "print(json.dumps({'module': settings.SETTINGS_MODULE, 'debug': settings.DEBUG, "
    "'hosts': settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'], 'allowed': settings.ALLOWED_HOSTS}))"
)


def site_free_env(tmp_path: Path, **values: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SITE_PREFIXES) and key not in SITE_VARIABLES
    }
    env["VAR_DIR"] = str(tmp_path)
    env.update(values)
    return env


def python(env: dict, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    return result.stderr.strip().splitlines()[-1]


# -- the entry points: production settings unless told otherwise ---------------------------------

ENTRY_POINTS = ["project.wsgi", "project.asgi"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_entry_point_without_a_settings_module_or_secrets_refuses_to_start(module, tmp_path):
    result = python(site_free_env(tmp_path), f"import {module}")

    assert refused(result) == (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY must be set in production."
    )


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_entry_point_without_a_settings_module_loads_production_with_debug_off(module, tmp_path):
    result = python(site_free_env(tmp_path, **PRODUCTION_SECRETS), f"import {module}; {REPORT}")

    report = loaded(result)
    assert report["module"] == "project.settings.prod"
    assert report["debug"] is False
    assert report["allowed"] == ["myapp.herokuapp.com"]


def test_daphne_and_gunicorn_started_without_a_settings_module_exit_naming_the_missing_secret(tmp_path):
    commands = {
        "daphne": [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(free_port()), "project.asgi:channel_layer"],
        "gunicorn": [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{free_port()}", "project.wsgi"],
    }
    for name, command in commands.items():
        result = subprocess.run(
            command, cwd=REPO, env=site_free_env(tmp_path), capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0, f"{name} should not run without its secrets:\n{result.stderr[-2000:]}"
        assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set in production." in result.stderr, name


def test_manage_py_and_make_run_keep_development_as_their_default(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", REPORT],
        cwd=REPO,
        env=site_free_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = loaded(result)
    assert (report["module"], report["debug"]) == ("project.settings.dev", True)

    from tools.stack import stack_environment

    assert stack_environment({"REDIS_URL": "redis://127.0.0.1:1/0"})["DJANGO_SETTINGS_MODULE"] == (
        "project.settings.dev"
    )
    assert stack_environment({"DJANGO_SETTINGS_MODULE": "project.settings.test", "REDIS_URL": "redis://x"})[
        "DJANGO_SETTINGS_MODULE"
    ] == ("project.settings.test")


# -- REDIS_SSL_CERT_REQS: the settings' layer hosts ---------------------------------------------


def production_hosts(tmp_path: Path, **values: str) -> subprocess.CompletedProcess:
    env = site_free_env(tmp_path, **{**PRODUCTION_SECRETS, "DJANGO_SETTINGS_MODULE": "project.settings.prod"})
    env.update(values)
    return python(env, REPORT)


def test_redis_ssl_cert_reqs_goes_on_every_rediss_url_of_redis_url_that_names_none(tmp_path):
    shards = f"{HEROKU_REDIS_URL},redis://:pw@127.0.0.1:2/0,rediss://:pw@127.0.0.1:3/0?ssl_cert_reqs=required"

    report = loaded(production_hosts(tmp_path, REDIS_URL=shards, REDIS_SSL_CERT_REQS="none"))

    assert report["hosts"] == [
        f"{HEROKU_REDIS_URL}?ssl_cert_reqs=none",
        "redis://:pw@127.0.0.1:2/0",
        # The URL's own option wins.
        "rediss://:pw@127.0.0.1:3/0?ssl_cert_reqs=required",
    ]


def test_without_redis_ssl_cert_reqs_a_rediss_url_is_left_as_given_and_verified(tmp_path):
    report = loaded(production_hosts(tmp_path, REDIS_URL=HEROKU_REDIS_URL))

    assert report["hosts"] == [HEROKU_REDIS_URL]
    from channels1_kit.redis_urls import parse

    assert parse(report["hosts"][0]).cert_reqs == "required"


def test_a_mistyped_redis_ssl_cert_reqs_stops_the_process_without_showing_the_password(tmp_path):
    result = production_hosts(tmp_path, REDIS_URL=HEROKU_REDIS_URL, REDIS_SSL_CERT_REQS="off")

    assert refused(result) == (
        "django.core.exceptions.ImproperlyConfigured: REDIS_SSL_CERT_REQS='off': expected none, optional or required"
    )
    assert "hunter2" not in result.stderr


# -- app.json ----------------------------------------------------------------------------------


def app_json() -> dict:
    return json.loads(APP_JSON.read_text())


def procfile_types() -> dict:
    types = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            types[name.strip()] = command.strip()
    return types


def production_requirements() -> set:
    """The variables project/settings/prod.py refuses to start without."""
    source = PROD_SETTINGS.read_text()
    names = set(re.findall(r'required\("([A-Z_]+)"\)', source))
    names |= set(re.findall(r'ImproperlyConfigured\("([A-Z_]+) must be set', source))
    return names


def test_app_json_holds_only_what_the_app_json_schema_knows():
    app = app_json()

    known = {"name", "description", "keywords", "website", "repository", "logo", "success_url", "scripts"}
    known |= {"env", "formation", "addons", "buildpacks", "environments", "stack", "image"}
    assert set(app) <= known
    assert len(app["name"]) <= 30 and app["description"]
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    assert app["stack"].startswith("heroku-")
    # The schema's scripts are postdeploy and pr-predestroy only: the release phase (migrate,
    # collectstatic) is the Procfile's, which Heroku runs before each release, the first too.
    assert set(app.get("scripts", {})) <= {"postdeploy", "pr-predestroy"}
    for name, variable in app["env"].items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert isinstance(variable, dict) and variable.get("description"), name
        assert set(variable) <= {"description", "value", "required", "generator"}, name
        assert isinstance(variable.get("value", ""), str), name


def test_app_json_formation_runs_the_procfiles_process_types_and_leaves_release_to_the_release_phase():
    formation, types = app_json()["formation"], procfile_types()

    assert set(types) == {"release", "web", "worker"}
    assert "manage.py migrate" in types["release"]
    assert set(formation) == set(types) - {"release"}
    assert formation["web"]["quantity"] == 1
    assert formation["worker"]["quantity"] in (1, 2)


def test_app_json_declares_every_variable_the_production_settings_require():
    app = app_json()
    required = production_requirements()
    assert required == {"DJANGO_SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS"}

    from_addons = {ADDON_VARIABLES[addon] for addon in app["addons"]}
    assert from_addons == {"DATABASE_URL", "REDIS_URL"}
    assert required <= set(app["env"]) | from_addons
    env = app["env"]
    assert env["DJANGO_SETTINGS_MODULE"]["value"] == "project.settings.prod"
    assert env["DJANGO_SECRET_KEY"]["generator"] == "secret"
    assert env["MONITORING_TOKEN"]["generator"] == "secret"
    assert env["REDIS_SSL_CERT_REQS"]["value"] == "none"
    assert "self-signed" in env["REDIS_SSL_CERT_REQS"]["description"]
    # What the person deploying must type in: the host name, which only Heroku knows.
    asked = {
        name
        for name, variable in env.items()
        if variable.get("required", True) and "value" not in variable and "generator" not in variable
    }
    assert asked == {"DJANGO_ALLOWED_HOSTS"}


def test_the_config_vars_app_json_and_its_add_ons_give_load_the_production_settings(tmp_path):
    """As Heroku sets up the app: values, generated secrets, the one asked for, the add-ons' URLs."""
    app = app_json()
    config = {}
    for name, variable in app["env"].items():
        if "generator" in variable:
            config[name] = secrets.token_hex(32)
        elif "value" in variable:
            config[name] = variable["value"]
        elif variable.get("required", True):
            config[name] = "myapp-1a2b3c4d5e6f.herokuapp.com"
    config["DATABASE_URL"] = "postgres://u:pw@127.0.0.1:1/d"
    config["REDIS_URL"] = HEROKU_REDIS_URL

    for module in ENTRY_POINTS:
        report = loaded(python(site_free_env(tmp_path, **config), f"import {module}; {REPORT}"))
        assert report["module"] == "project.settings.prod"
        assert report["debug"] is False
        assert report["allowed"] == ["myapp-1a2b3c4d5e6f.herokuapp.com"]
        assert report["hosts"] == [f"{HEROKU_REDIS_URL}?ssl_cert_reqs=none"]

    # And without any one of the required ones, they refuse to start, naming it.
    for name in sorted(production_requirements()):
        missing = {key: value for key, value in config.items() if key != name}
        assert name in refused(python(site_free_env(tmp_path, **missing), "import project.wsgi"))


# The site's settings, not the kit: REDIS_URL's commas separate shards, not a sentinel URL's hosts.
def test_the_settings_read_a_sentinel_redis_url_as_one_shard(monkeypatch):
    import importlib

    import project.settings.base as base

    sentinels = "redis+sentinel://:pw@h1:26379,h2:26379/mymaster/0?sentinel_password=s"
    monkeypatch.setenv("REDIS_URL", f"{sentinels},redis://other:6379/0")
    try:
        assert importlib.reload(base).REDIS_HOSTS == [sentinels, "redis://other:6379/0"]
    finally:
        monkeypatch.undo()
        importlib.reload(base)
