"""The Heroku build, rehearsed: what heroku/python's buildpack does with this repository.

The buildpack (heroku/heroku-buildpack-python, bin/compile) runs the app's bin/pre_compile hook
with the app's config vars (lib/hooks.sh, sub_env), then picks its package manager by the files at
the root (lib/package_manager.sh): exactly one of requirements.txt (pip), Pipfile.lock, poetry.lock
and uv.lock, or the build fails. Here that is requirements.txt, which it installs with its own pip
(requirements/pip.txt there: 26.2.1, installed with --isolated) as `pip install -r requirements.txt
--exists-action=w --no-cache-dir --no-input --progress-bar off` (lib/pip.sh), with no config vars
but PIP_EXTRA_INDEX_URL. Then bin/steps/collectstatic (the config vars exported, PYTHONPATH=.)
runs `manage.py collectstatic --noinput --traceback`, and the bin/post_compile hook runs, again
with the config vars. The test does the same in a fresh copy of the checkout, with a fresh
interpreter environment and a $HOME of its own, as a build has.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker

from tools.processes import REPO

# The pip release heroku-buildpack-python pins (its requirements/pip.txt).
BUILDPACK_PIP = "26.2.1"
# lib/package_manager.sh: the files it looks for, and the package manager each one means.
PACKAGE_MANAGER_FILES = {"Pipfile.lock": "pipenv", "requirements.txt": "pip", "poetry.lock": "poetry", "uv.lock": "uv"}

BUILD_CONFIG = {
    # app.json's value, and what add-ons and generated secrets give the build.
    "DJANGO_SETTINGS_MODULE": "project.settings.prod",
    "DJANGO_SECRET_KEY": "a-production-secret-of-fifty-or-more-characters-0123456789abcdefXYZ",
    "DJANGO_ALLOWED_HOSTS": "myapp.herokuapp.com",
    # Never connected to: the build only loads the settings.
    "DATABASE_URL": "postgres://site:pw@127.0.0.1:1/site",
    "REDIS_URL": "rediss://:pw@127.0.0.1:1",
    "REDIS_SSL_CERT_REQS": "none",
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def package_managers(app: Path) -> list:
    """What lib/package_manager.sh finds at the root of the app; the build needs exactly one."""
    if (app / "Pipfile").exists() and not (app / "Pipfile.lock").exists():
        return ["pipenv without a lock: a build error"]
    return [manager for name, manager in PACKAGE_MANAGER_FILES.items() if (app / name).is_file()]


def pinned_names() -> set:
    """The distributions requirements.txt names for this Python (the kit by its project name)."""
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line == "./kit":
            names.add("channels1-kit")
        elif line and (";" not in line or Marker(line.split(";", 1)[1]).evaluate()):
            names.add(normalized(re.split(r"[=;<> ]", line, maxsplit=1)[0]))
    return names


def test_the_root_makes_the_buildpack_use_pip_and_python_3_13():
    assert package_managers(REPO) == ["pip"]
    version = (REPO / ".python-version").read_text().strip()
    assert version == "3.13"
    for hook in ("pre_compile", "post_compile"):
        assert os.access(REPO / "bin" / hook, os.X_OK), f"bin/{hook} must be executable"


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
    app, python_home, home = root / "app", root / "python", root / "home"
    home.mkdir()
    checkout_copy(app)
    # The build's own environment: none of this machine's or this test run's settings, a $HOME
    # of its own (pip reads its user configuration there), and the buildpack's Python on PATH.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST_", "PIP_", "VIRTUAL_ENV", "XDG_"))
    }
    env.update(HOME=str(home), PATH=f"{python_home / 'bin'}:{env['PATH']}", PYTHONUNBUFFERED="1")
    # sub_env: the hooks and collectstatic see the app's config vars.
    with_config = {**env, **BUILD_CONFIG, "BUILD_DIR": str(app)}

    # bin/compile: the pre_compile hook, then the package manager, chosen by what is at the root then.
    pre_compile = run([str(app / "bin" / "pre_compile")], cwd=app, env=with_config)
    managers = package_managers(app)

    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(python_home)])
    # pip::install_pip: --isolated, so nothing of the app's or the user's pip configuration applies.
    python = str(python_home / "bin" / "python")
    pip_pin = f"pip=={BUILDPACK_PIP}"
    run([python, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--no-input", "--quiet", pip_pin])
    # pip::install_dependencies.
    install = run(
        [
            "pip",
            "install",
            "-r",
            "requirements.txt",
            "--exists-action=w",
            "--no-cache-dir",
            "--no-input",
            "--progress-bar",
            "off",
            f"--src={root / 'src'}",
        ],
        cwd=app,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    # bin/steps/collectstatic, then the post_compile hook.
    build_env = {**with_config, "PYTHONPATH": ".", "DJANGO_STATIC_ROOT": str(root / "staticfiles")}
    build_env["VAR_DIR"] = str(root / "var")
    collectstatic = run([python, "manage.py", "collectstatic", "--noinput", "--traceback"], cwd=app, env=build_env)
    post_compile = run([str(app / "bin" / "post_compile")], cwd=app, env=build_env)
    return {
        "app": app,
        "python": python,
        "env": build_env,
        "root": root,
        "home": home,
        "managers": managers,
        "pre_compile": pre_compile,
        "install": install,
        "collectstatic": collectstatic,
        "post_compile": post_compile,
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
def test_the_build_uses_pip_and_installs_channels_1_beside_django_5_2_with_the_loader_active(slug):
    assert slug["managers"] == ["pip"]
    # The hook's setting is in the build's $HOME, not in the app that becomes the slug.
    assert "no-deps = true" in (slug["home"] / ".config" / "pip" / "pip.conf").read_text()
    assert not list(slug["app"].rglob("pip.conf"))

    result = run([slug["python"], "-c", REPORT], cwd=slug["app"], env=slug["env"])
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
    # A real install from kit/, its .pth in site-packages: not a pointer into the build directory.
    assert report["kit_editable"] is False
    assert report["settings"] == "project.settings.prod"


@pytest.mark.integration
def test_the_build_has_exactly_requirements_txt_and_its_hooks_check_it(slug):
    frozen = run([slug["python"], "-m", "pip", "freeze", "--all"], cwd=slug["app"], env=slug["env"]).stdout
    # name==version, or name @ file://... for the kit, built from kit/.
    installed = {normalized(re.split(r"==| @ ", line)[0]) for line in frozen.splitlines() if line.strip()}
    # Python 3.13: no setuptools of the buildpack's own (it is in requirements.txt), pip its own.
    assert installed - {"pip"} == pinned_names()
    assert "the chosen conflicts" in slug["post_compile"].stdout

    static = slug["root"] / "staticfiles"
    assert (static / "admin" / "css" / "base.css").is_file()
    assert "static files copied" in slug["collectstatic"].stdout


@pytest.mark.integration
def test_without_the_pre_compile_hook_the_buildpacks_pip_refuses_the_set(slug, tmp_path):
    """Why bin/pre_compile exists: the same install with pip's resolver fails on the asgiref conflict."""
    target = tmp_path / "resolved"
    result = subprocess.run(
        [
            slug["python"],
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--isolated",
            "-r",
            "requirements.txt",
            "--target",
            str(target),
        ],
        cwd=slug["app"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0
    assert "ResolutionImpossible" in result.stderr or "conflicting dependencies" in result.stderr
