"""What `make run`, the Procfile and deploy/ start imports only what requirements.txt installs.

make run installs the runtime set alone (requirements.txt); the test tools and the benchmark's
come with make test and make bench. A module of the running stack that imports one of theirs
works for everyone who ran make test first, and crashes for a new user (it did: psutil, through
tools/processes.py). Every import in the code those processes load, at the top or inside a
function, must be the standard library, our own, or a distribution requirements.txt pins.
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from tools.processes import REPO

# What the processes of make run, the Procfile and deploy/supervisor load: manage.py, the
# settings and apps, the kit, and make run's launcher and front door.
RUNTIME_SOURCES = [
    REPO / "manage.py",
    REPO / "project",
    REPO / "pages",
    REPO / "liveblog",
    REPO / "chat",
    REPO / "kit" / "channels1_kit",
    REPO / "kit" / "fanout_layer",
    REPO / "tools" / "stack.py",
    REPO / "tools" / "frontdoor.py",
    REPO / "tools" / "waits.py",
]
FIRST_PARTY = {"project", "pages", "liveblog", "chat", "tools", "channels1_kit", "fanout_layer"}


def runtime_distributions() -> set:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line != "./kit":
            names.add(re.sub(r"[-_.]+", "-", re.split(r"[=;<> ]", line, maxsplit=1)[0]).lower())
    return names


def imported_modules(path: Path) -> set:
    """Dotted names path imports (for `from a import b`, both a and a.b: b may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def first_party_file(module: str):
    """Where one of our modules lives (the kit's under kit/), or None for a name in a module."""
    for root in (REPO, REPO / "kit"):
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def outside_the_runtime_set(start: list) -> dict:
    """{module: [files importing it]} for the imports, followed through our own modules from the
    start files, that neither the standard library nor requirements.txt provides."""
    runtime = runtime_distributions()
    providers = importlib.metadata.packages_distributions()
    outside: dict = {}
    seen, pending = set(), list(start)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FIRST_PARTY:
                found = first_party_file(module)
                if found is not None:
                    pending.append(found)
                continue
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            distributions = {re.sub(r"[-_.]+", "-", name).lower() for name in providers.get(top, [])}
            shown = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
            if not distributions & runtime and shown not in outside.get(top, []):
                outside.setdefault(top, []).append(shown)
    return outside


def python_files() -> list:
    files = []
    for source in RUNTIME_SOURCES:
        files += [source] if source.is_file() else sorted(source.rglob("*.py"))
    return files


def test_every_import_of_the_running_stack_is_in_the_runtime_set():
    outside = outside_the_runtime_set(python_files())
    assert outside == {}, f"imported by the running stack, not installed by requirements.txt: {outside}"


def test_the_check_finds_an_import_of_a_test_tool(tmp_path):
    """The scan itself: psutil and pytest are installed here (make test), and neither is runtime."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef later():\n    import psutil\n    from pytest import fixture\n")
    assert outside_the_runtime_set([probe]) == {"psutil": [str(probe)], "pytest": [str(probe)]}


def test_the_check_follows_our_own_modules_to_what_they_import(tmp_path):
    """The way psutil once reached make run: tools/stack.py imported tools.processes."""
    probe = tmp_path / "launcher.py"
    probe.write_text("from tools.processes import free_port\n")
    outside = outside_the_runtime_set([probe])
    assert outside["psutil"] == ["tools/processes.py"]
