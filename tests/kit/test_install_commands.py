"""Every install command the README and docs/ write is one that a test or make runs.

They drifted before: the README said `pip install --no-deps -e .` and docs/deploying.md
`pip install --no-deps .`, which fails at the root of this repository, while the Makefile did
something else again. Here each pip command in a code block of the docs must be one of
DOCUMENTED, and each of those is run: by make (Makefile), by test_wheel_site.py (the adopting
site's commands), or below, where the README's install runs in a fresh virtualenv and the
environment it gives passes tests/kit/test_install.py, the checks `make test` runs on its own.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.processes import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "kit" / "README.md"]

# Each command the docs may write (as run from the repository's root, or a site's), and who runs it.
DOCUMENTED = {
    "pip install --no-deps -r requirements.txt": "the Makefile, and the fresh install below",
    "pip install --no-deps --editable ./kit": "the Makefile",
    "pip install -r requirements/dev.txt": "the Makefile",
    "pip install --no-deps -r requirements/django22.txt": "the Makefile",
    "pip wheel --no-deps -w wheels kit/": "tests/kit/test_wheel_site.py",
    "pip install --no-deps wheels/channels1_kit-*.whl": "tests/kit/test_wheel_site.py",
}


def code_block_lines(path: Path) -> list:
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def normalized(line: str) -> str:
    """The pip command of a shell line: no comment, no path before pip, single spaces."""
    command = line.split("#", 1)[0].strip()
    command = re.sub(r"^\S*/(pip\b)", r"\1", command)
    return " ".join(command.split())


def documented_pip_commands() -> dict:
    found = {}
    for path in DOCS:
        if path.exists():
            for line in code_block_lines(path):
                if re.match(r"\s*(\S*/)?pip (install|wheel)\b", line):
                    found.setdefault(normalized(line), []).append(str(path.relative_to(REPO)))
    return found


def makefile_commands() -> set:
    commands = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        if re.search(r"\bpip install\b", line):
            command = re.sub(r"^\s*\S*/(pip\b)", r"\1", line).replace(" --quiet", "")
            commands.add(" ".join(command.split()))
    return commands


def test_every_pip_command_in_the_docs_is_one_that_runs():
    found = documented_pip_commands()
    unknown = {command: where for command, where in found.items() if command not in DOCUMENTED}
    assert unknown == {}, "install commands in the docs that nothing runs"
    # The README's own install is there, and the plain one is the one make runs too.
    assert "pip install --no-deps -r requirements.txt" in found
    assert "README.md" in found["pip install --no-deps -r requirements.txt"]
    by_make = {command for command, who in DOCUMENTED.items() if "Makefile" in who}
    assert by_make <= makefile_commands()


def test_the_adopting_sites_commands_are_the_ones_its_test_runs():
    source = (REPO / "tests" / "kit" / "test_wheel_site.py").read_text()
    assert '"pip", "wheel", "--quiet", "--no-deps", "-w"' in source
    assert 'pip + ["--no-deps", str(wheel)]' in source
    assert '"channels1_kit.install_check"' in source


@pytest.mark.integration
def test_the_readmes_install_gives_the_environment_make_test_checks(tmp_path):
    """The README's commands in a fresh virtualenv: then tests/kit/test_install.py passes there
    (every file of channels, daphne and asgi_redis as released, `pip check` listing exactly the
    chosen conflict, the kit's install check clean)."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    readme = [normalized(line) for line in code_block_lines(REPO / "README.md")]
    installs = [command for command in readme if command.startswith("pip install")]
    assert installs == ["pip install --no-deps -r requirements.txt"]
    for command in installs:
        result = subprocess.run(
            [str(venv / "bin" / "pip"), *command.split()[1:], "--quiet", "--disable-pip-version-check"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    check = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "channels1_kit.install_check"], capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stderr
    # pytest alone, at the pins of requirements/dev.txt, to run the install checks there.
    dev = (REPO / "requirements" / "dev.txt").read_text()
    pins = [line for line in dev.splitlines() if re.match(r"^(pytest|iniconfig|pluggy)==", line)]
    assert len(pins) == 3
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *pins], check=True, timeout=600)
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "--noconftest",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            str(REPO / "tests" / "kit" / "test_install.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout
