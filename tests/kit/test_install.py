"""The environment is the one we chose: the conflicts pip reports, and the ASGI 1 packages untouched.

channels, daphne and asgi_redis are installed with --no-deps on Django 3.0+ and never patched:
whatever they lack, the kit's loader supplies from outside them.
"""

import base64
import hashlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from channels1_kit import install_check

DJANGO_VERSION = tuple(int(part) for part in importlib.metadata.version("Django").split(".")[:2])
LEGACY_RUNTIME = DJANGO_VERSION < (3, 0)
ASGI1_DISTRIBUTIONS = ["channels", "daphne", "asgi_redis"]


def test_pip_check_lists_only_the_chosen_conflicts():
    returncode, reported = install_check.pip_check()
    # Written out here as well as in the kit, so that a change there cannot widen what passes.
    # asgi_redis's own Redis client and serializer are left out on every Django: the fan-out
    # layer makes its calls on redis-py 8 and msgpack 1.
    asgi_redis = importlib.metadata.version("asgi-redis")
    expected = {
        f"asgi-redis {asgi_redis} requires msgpack-python, which is not installed.",
        f"asgi-redis {asgi_redis} has requirement redis~=2.10.6, but you have redis "
        f"{importlib.metadata.version('redis')}.",
    }
    if not LEGACY_RUNTIME:
        asgiref = importlib.metadata.version("asgiref")
        expected |= {
            f"{name} {importlib.metadata.version(name)} has requirement asgiref{spec}, but you have asgiref {asgiref}."
            for name, spec in {"channels": "~=1.1", "daphne": "~=1.1", "asgi-redis": "~=1.1.2"}.items()
        }
    assert install_check.accepted_conflicts() == expected
    assert reported == expected
    assert returncode == 1
    assert install_check.unexpected() == set()


def test_the_install_check_fails_on_a_requirement_nothing_installed(tmp_path):
    """A package whose dependency is missing, as a hand-kept list installed with --no-deps would
    leave it: the check names it and exits 1."""
    dist = tmp_path / "orphan_probe-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: orphan-probe\nVersion: 1.0\nRequires-Dist: no-such-package-anywhere==1.0\n"
    )
    (dist / "RECORD").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "channels1_kit.install_check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 1
    assert "orphan-probe 1.0 requires no-such-package-anywhere" in result.stderr


def recorded_digest(path: Path) -> str:
    """A file's sha256 as RECORD writes it: urlsafe base64 without padding."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def compiled(file: importlib.metadata.PackagePath) -> bool:
    return "__pycache__" in file.parts or file.suffix == ".pyc"


@pytest.mark.parametrize("name", ASGI1_DISTRIBUTIONS)
def test_installed_files_match_their_record(name):
    distribution = importlib.metadata.distribution(name)
    files = [file for file in distribution.files or [] if not compiled(file)]
    assert files, f"{name} has no RECORD"
    missing, differing, unhashed = [], [], []
    for file in files:
        path = Path(file.locate())
        if file.hash is None:
            # RECORD cannot hold its own hash; nothing else may go without one.
            if file.name != "RECORD":
                unhashed.append(str(file))
            continue
        if not path.is_file():
            missing.append(str(file))
            continue
        assert file.hash.mode == "sha256", f"{file}: {file.hash.mode}"
        if recorded_digest(path) != file.hash.value or path.stat().st_size != file.size:
            differing.append(str(file))
    assert (missing, differing, unhashed) == ([], [], []), f"{name} {distribution.version}"


def site_dirs(recorded: set[Path]) -> set[Path]:
    """Where the distribution's .dist-info sits: its top-level packages are the directories there."""
    return {path.parent.parent for path in recorded if path.parent.name.endswith(".dist-info")}


@pytest.mark.parametrize("name", ASGI1_DISTRIBUTIONS)
def test_no_file_was_added_to_their_packages(name):
    """A module dropped into channels/ or asgi_redis/ would also be a patch."""
    distribution = importlib.metadata.distribution(name)
    recorded = {Path(file.locate()).resolve() for file in distribution.files or []}
    # The packages it owns: daphne also puts a plugin into twisted/, which belongs to Twisted.
    roots = {
        path.parent for path in recorded if path.name == "__init__.py" and path.parent.parent in site_dirs(recorded)
    }
    assert roots, f"{name}: no package directory in RECORD"
    added = [
        str(path)
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.resolve() not in recorded
    ]
    assert added == []
