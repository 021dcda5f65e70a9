"""The Heroku build, rehearsed: what heroku/python's buildpack does with this repository.

The buildpack (heroku/heroku-buildpack-python, lib/package_manager.sh and lib/uv.sh) picks its
package manager by the files at the root: a requirements.txt (or Pipfile, poetry.lock) there
would make it pip's, so the site's pip files live under requirements/. With uv.lock,
pyproject.toml and .python-version it installs uv, points UV_PROJECT_ENVIRONMENT at its own
Python (no managed Pythons, no downloads) and runs `uv sync --locked --no-default-groups
--compile-bytecode`; then (bin/steps/collectstatic) `manage.py collectstatic --noinput`. The test does the same in a
fresh copy of the checkout with a fresh interpreter environment and the pinned uv.

The pyproject's dependencies and make's requirements files are two lists of the same pins:
test_the_uv_project_and_the_requirements_files_pin_the_same_set holds them together.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tools.processes import REPO

# The uv release heroku-buildpack-python pins (its requirements/uv.txt), which the rehearsal installs.
UV_VERSION = "0.9.28"
# What the buildpack runs (lib/uv.sh: uv::install_dependencies), outside Heroku CI.
BUILDPACK_SYNC = ["sync", "--locked", "--no-default-groups", "--compile-bytecode", "--no-progress"]
# The files that would make the buildpack choose pip, pipenv or poetry instead of uv.
OTHER_MANAGERS = ("requirements.txt", "Pipfile", "Pipfile.lock", "poetry.lock")

SITE_REQUIREMENTS = REPO / "requirements" / "site.txt"
ASGI1_REQUIREMENTS = REPO / "requirements" / "asgi1.txt"

BUILD_CONFIG = {
    # app.json's value, and what add-ons and generated secrets give the build's collectstatic.
    "DJANGO_SETTINGS_MODULE": "project.settings.prod",
    "DJANGO_SECRET_KEY": "a-production-secret-of-fifty-or-more-characters-0123456789abcdefXYZ",
    "DJANGO_ALLOWED_HOSTS": "myapp.herokuapp.com",
    # Never connected to: the build only loads the settings.
    "DATABASE_URL": "postgres://site:pw@127.0.0.1:1/site",
    "REDIS_URL": "rediss://:pw@127.0.0.1:1",
    "REDIS_SSL_CERT_REQS": "none",
}


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def normalized(requirement: str) -> str:
    name, _, marker = requirement.partition(";")
    name = re.sub(r"[-_.]+", "-", name.strip()).lower()
    marker = marker.strip().replace('"', "'")
    return f"{name}; {marker}" if marker else name


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_uv_project_and_the_requirements_files_pin_the_same_set():
    project = pyproject()
    dependencies = project["project"]["dependencies"]
    pinned = requirement_lines(SITE_REQUIREMENTS) + requirement_lines(ASGI1_REQUIREMENTS)

    assert [normalized(dep) for dep in dependencies] == [normalized(dep) for dep in pinned] + ["channels1-kit"]
    assert project["tool"]["uv"]["package"] is False
    assert project["tool"]["uv"]["sources"]["channels1-kit"] == {"path": "kit"}
    # The one override: asgiref, at requirements/site.txt's pin.
    asgiref = next(line for line in pinned if normalized(line).startswith("asgiref"))
    assert project["tool"]["uv"]["override-dependencies"] == [asgiref]


def test_the_root_holds_what_makes_the_buildpack_use_uv_and_nothing_that_would_make_it_use_another():
    for name in ("uv.lock", "pyproject.toml", ".python-version"):
        assert (REPO / name).is_file(), name
    for name in OTHER_MANAGERS:
        assert not (REPO / name).exists(), f"{name} at the root: the buildpack would not use uv.lock"
    version = (REPO / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)
    requires = pyproject()["project"]["requires-python"]
    assert requires == ">=3.11,<3.14" and (3, 11) <= tuple(map(int, version.split("."))) <= (3, 13)


def checkout_copy(destination: Path) -> None:
    """The checkout as git push would send it (tracked and new files, minus the ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def slug(tmp_path_factory):
    """A build of the copy: its Python environment, as the buildpack leaves it."""
    root = tmp_path_factory.mktemp("heroku-build")
    app, python_home, uv_home = root / "app", root / "python", root / "uv"
    checkout_copy(app)
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(python_home)])
    run([base, "-m", "venv", str(uv_home)])
    run([str(uv_home / "bin" / "pip"), "install", "--quiet", f"uv=={UV_VERSION}"])

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST_", "UV_", "VIRTUAL_ENV"))
    }
    env.update(
        UV_PROJECT_ENVIRONMENT=str(python_home),
        UV_NO_MANAGED_PYTHON="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=str(root / "uv-cache"),
        PATH=f"{python_home / 'bin'}:{env['PATH']}",
    )
    sync = run([str(uv_home / "bin" / "uv"), *BUILDPACK_SYNC], cwd=app, env=env)

    # bin/steps/collectstatic: the app's config vars, PYTHONPATH=., --noinput --traceback.
    env.update(BUILD_CONFIG, PYTHONPATH=".", DJANGO_STATIC_ROOT=str(root / "staticfiles"), VAR_DIR=str(root / "var"))
    collectstatic = run(
        [str(python_home / "bin" / "python"), "manage.py", "collectstatic", "--noinput", "--traceback"],
        cwd=app,
        env=env,
    )
    return {
        "app": app,
        "python": python_home / "bin" / "python",
        "env": env,
        "root": root,
        "sync": sync,
        "collectstatic": collectstatic,
    }


REPORT = """
import json
from importlib.metadata import distribution, version
import asgi_redis, channels, channels1_kit, daphne, django
import asgiref.base_layer, django.utils.six
from channels1_kit import loader
print(json.dumps({
    "versions": {name: version(name) for name in
                 ("channels", "daphne", "asgi_redis", "Django", "asgiref", "channels1-kit")},
    "channels_requires": distribution("channels").requires,
    "loader": loader.is_installed(),
    "kit_editable": "site-packages" not in channels1_kit.__file__,
    "settings": __import__("django.conf").conf.settings.SETTINGS_MODULE,
}))
"""


@pytest.mark.integration
def test_the_buildpacks_uv_sync_installs_channels_1_beside_django_5_2_with_the_loader_active(slug):
    result = run([str(slug["python"]), "-c", REPORT], cwd=slug["app"], env=slug["env"])
    report = json.loads(result.stdout.strip().splitlines()[-1])

    versions = report["versions"]
    assert versions["channels"] == "1.1.8"
    assert versions["daphne"] == "1.4.2"
    assert versions["asgi_redis"] == "1.4.3"
    assert versions["Django"].startswith("5.2.")
    # The override: channels still asks for asgiref~=1.1, and asgiref 3 stands in.
    assert versions["asgiref"] == "3.13.0"
    assert any(re.sub(r"[ ()]", "", req).startswith("asgiref~=1.1") for req in report["channels_requires"])
    assert report["loader"] is True
    # A real install from kit/, its .pth in site-packages: not a pointer into a checkout.
    assert report["kit_editable"] is False
    assert report["settings"] == "project.settings.prod"


@pytest.mark.integration
def test_the_build_has_nothing_but_the_lock_and_collectstatic_gathers_the_static_files(slug):
    frozen = run([str(slug["python"]), "-m", "pip", "freeze", "--all"], cwd=slug["app"], env=slug["env"]).stdout
    # name==version, or name @ file://... for the kit, built from kit/.
    installed = {normalized(re.split(r"==| @ ", line)[0]) for line in frozen.splitlines() if line.strip()}
    locked = {
        normalized(package["name"])
        for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]
        if package["name"] != "channels1-site"
    }
    # colorama and tzdata are Windows-only in the lock; pip is the venv's own.
    assert installed - {"pip"} == locked - {"colorama", "tzdata"}

    static = slug["root"] / "staticfiles"
    assert (static / "admin" / "css" / "base.css").is_file()
    assert "static files copied" in slug["collectstatic"].stdout
