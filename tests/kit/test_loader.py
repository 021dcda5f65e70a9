"""The compatibility loader, one shim at a time, in fresh interpreters of this environment.

Each test starts sys.executable twice: as deployed (channels1_kit.pth starts the loader) and
with CHANNELS1_KIT_LOADER=0. On Django 3.0+ (asgiref 3) the first import must work because
the loader supplied the shim, and the second must fail the way the unmodified packages fail
without it. On Django 2.2 (asgiref 1.1.2) both must work and the loader must supply nothing:
the runtime's own modules are the ones imported.
"""

import importlib.metadata
import json
import os
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.processes import REPO

DJANGO_VERSION = tuple(int(part) for part in importlib.metadata.version("Django").split(".")[:2])
# Django 2.2 shares its environment with channels 1's own asgiref 1.1.2: nothing to supply.
LEGACY_RUNTIME = DJANGO_VERSION < (3, 0)
PTH_LINE = "import channels1_kit.loader; channels1_kit.loader.install()"

# Imports a module, then reports what the loader supplied and where a watched module came from.
PROBE = """
import importlib, json, sys
import channels1_kit.loader as loader

module, watched, served_from = sys.argv[1], sys.argv[2], sys.argv[3]
importlib.import_module(module)
found = sys.modules[watched]
print(json.dumps({
    "supplied": [name for name, _ in loader.supplied],
    "origin": getattr(found, "__file__", None) or f"<{type(found).__module__}.{type(found).__qualname__}>",
    "served": bool(served_from) and found is sys.modules.get(served_from),
}))
"""


def run_python(*args: str, loader: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A fresh interpreter of this environment, with or without the loader, outside any settings."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("CHANNELS1_KIT_LOADER", None)
    if not loader:
        env["CHANNELS1_KIT_LOADER"] = "0"
    return subprocess.run(
        [sys.executable, *args],
        # Not the checkout: what is importable must come from the installation.
        cwd=cwd or tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def report(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Shim:
    name: str
    # What imports it: a module of channels, daphne or asgi_redis wherever one does.
    importer: str
    # The module the loader serves under `name` on Django 3.0+.
    served_from: str
    # How the runtime's own module ends its origin on Django 2.2 (a file, or six's lazy modules).
    genuine: str
    # How the last line of the traceback starts without the loader, on Django 3.0+.
    error: str


SHIMS = [
    Shim(
        "asgiref.base_layer",
        "asgi_redis",
        "channels1_kit.asgi1.base_layer",
        "/asgiref/base_layer.py",
        "ModuleNotFoundError: No module named 'asgiref.base_layer'",
    ),
    Shim(
        "asgiref.inmemory",
        "channels.test",
        "channels1_kit.asgi1.inmemory",
        "/asgiref/inmemory.py",
        "ModuleNotFoundError: No module named 'asgiref.inmemory'",
    ),
    # Nothing in the three packages imports it; a channel layer's own tests do (tests/fanout_layer).
    Shim(
        "asgiref.conformance",
        "asgiref.conformance",
        "channels1_kit.asgi1.conformance",
        "/asgiref/conformance.py",
        "ModuleNotFoundError: No module named 'asgiref.conformance'",
    ),
    Shim(
        "django.utils.six",
        "channels.routing",
        "six",
        "/django/utils/six.py",
        "ImportError: cannot import name 'six' from 'django.utils'",
    ),
    # A submodule of the served six, as channels.staticfiles (imported by runworker) asks for it.
    Shim(
        "django.utils.six.moves.urllib.parse",
        "channels.staticfiles",
        "six.moves.urllib.parse",
        "<django.utils.six.Module_six_moves_urllib_parse>",
        "ModuleNotFoundError: No module named 'django.utils.six'",
    ),
]


@pytest.mark.parametrize("shim", SHIMS, ids=[shim.name for shim in SHIMS])
def test_module_shim(shim: Shim):
    found = report(run_python("-c", PROBE, shim.importer, shim.name, shim.served_from))
    without_loader = run_python("-c", f"import {shim.importer}", loader=False)
    if LEGACY_RUNTIME:
        assert found["supplied"] == []
        assert not found["served"]
        assert found["origin"].endswith(shim.genuine), found["origin"]
        assert without_loader.returncode == 0, without_loader.stderr
    else:
        assert shim.name in found["supplied"]
        assert found["served"], f"{shim.name} is not {shim.served_from}: {found['origin']}"
        assert without_loader.returncode != 0
        assert last_line(without_loader).startswith(shim.error), without_loader.stderr


SIGNALS_PROBE = """
import inspect, json
import django.dispatch
from django.dispatch import dispatcher
import channels.signals
import channels1_kit.loader as loader

try:
    django.dispatch.Signal(providing_args=["elsewhere"])
    refused = False
except TypeError:
    refused = True
print(json.dumps({
    "supplied": [name for name, _ in loader.supplied],
    "is_signal": isinstance(channels.signals.consumer_started, dispatcher.Signal),
    "exact_class": type(channels.signals.consumer_started) is dispatcher.Signal,
    "signal_restored": django.dispatch.Signal is dispatcher.Signal,
    "elsewhere_refused": refused,
    "file": channels.signals.__file__,
}))
"""


def test_providing_args_shim():
    found = report(run_python("-c", SIGNALS_PROBE))
    without_loader = run_python("-c", "import channels.signals", loader=False)
    assert found["is_signal"]
    # The real file ran, however its Signal was made.
    assert found["file"].endswith("/channels/signals.py")
    assert found["signal_restored"]
    if LEGACY_RUNTIME:
        assert "channels.signals" not in found["supplied"]
        assert found["exact_class"]
        assert not found["elsewhere_refused"]
        assert without_loader.returncode == 0, without_loader.stderr
    else:
        assert "channels.signals" in found["supplied"]
        # Only channels.signals was let off: anyone else passing providing_args still hears of it.
        assert found["elsewhere_refused"]
        assert without_loader.returncode != 0
        assert last_line(without_loader) == (
            "TypeError: Signal.__init__() got an unexpected keyword argument 'providing_args'"
        ), without_loader.stderr


def test_the_sites_imports_get_only_what_the_runtime_lacks():
    """Everything the site's processes import, in one interpreter: the loader supplies the shims
    above and nothing else on Django 3.0+, and nothing at all on Django 2.2."""
    code = (
        "import json, channels1_kit.loader as loader\n"
        "import asgi_redis, channels.test, channels.staticfiles, channels.signals, channels.auth\n"
        "import channels.management.commands.runworker, daphne.server, daphne.cli, fanout_layer\n"
        "print(json.dumps([name for name, _ in loader.supplied]))\n"
    )
    supplied = report(run_python("-c", code))
    if LEGACY_RUNTIME:
        assert supplied == []
    else:
        expected = {"asgiref.base_layer", "asgiref.inmemory", "django.utils.six", "channels.signals"}
        # Django 5.2 made TransactionTestCase._pre_setup a classmethod; 3.x and 4.x did not.
        expected |= {"channels.test.base"} if DJANGO_VERSION >= (5, 2) else set()
        assert set(supplied) >= expected
        unexpected = [name for name in supplied if name not in expected and not name.startswith("django.utils.six.")]
        assert unexpected == []


# A meta-path finder of the pre-3.4 kind, as six 1.10 (inside Django 2.2) registers for
# django.utils.six.moves: find_module and load_module, no find_spec.
BRIDGE_PROBE = """
import json, sys, types
import channels1_kit.loader as loader

class LegacyFinder:
    names = {"kit_legacy_moves": True, "kit_legacy_moves.parse": False}

    def find_module(self, fullname, path=None):
        return self if fullname in self.names else None

    def is_package(self, fullname):
        return self.names[fullname]

    def load_module(self, fullname):
        module = sys.modules.setdefault(fullname, types.ModuleType(fullname))
        module.__loader__ = self
        if self.names[fullname]:
            module.__path__ = []
        module.made_by = "LegacyFinder"
        return module

sys.meta_path.append(LegacyFinder())
import kit_legacy_moves.parse
supplied = list(loader.supplied)
asked = loader.FallbackFinder().find_spec("kit_legacy_moves.parse") if loader.is_installed() else None
print(json.dumps({
    "made_by": kit_legacy_moves.parse.made_by,
    "supplied": supplied,
    "fallback_spec": asked is not None,
}))
"""


def test_find_module_bridge():
    result = run_python("-c", BRIDGE_PROBE)
    without_loader = run_python("-c", BRIDGE_PROBE, loader=False)
    if sys.version_info >= (3, 12):
        found = report(result)
        assert found["made_by"] == "LegacyFinder"
        assert found["fallback_spec"]
        assert [name for name, _ in found["supplied"]] == ["kit_legacy_moves", "kit_legacy_moves.parse"]
        assert all(why == "bridged from LegacyFinder.find_module" for _, why in found["supplied"])
        # Python 3.12 itself no longer asks such a finder.
        assert without_loader.returncode != 0
        assert last_line(without_loader) == "ModuleNotFoundError: No module named 'kit_legacy_moves'"
    else:
        # Python 3.11 still asks find_module itself; the bridge must stay out of its way.
        found = report(result)
        assert found["made_by"] == "LegacyFinder"
        assert not found["fallback_spec"]
        assert found["supplied"] == []
        assert report(without_loader)["made_by"] == "LegacyFinder"


def test_pth_is_installed_in_site_packages():
    installed = [Path(directory) / "channels1_kit.pth" for directory in site.getsitepackages()]
    installed = [path for path in installed if path.exists()]
    assert len(installed) == 1, f"channels1_kit.pth in {site.getsitepackages()}: {installed}"
    assert installed[0].read_text().strip() == PTH_LINE


def test_pth_starts_the_loader_in_a_fresh_interpreter():
    check = "import channels1_kit.loader as l; print(l.is_installed())"
    assert run_python("-c", check).stdout.strip() == "True"
    assert run_python("-c", check, loader=False).stdout.strip() == "False"
    # Without site processing (-S) nothing starts it; processing the site-packages .pth files does.
    # From the kit's folder, since -S also leaves the editable install's path out.
    started_by_site = run_python(
        "-S",
        "-c",
        "import channels1_kit.loader as l; before = l.is_installed(); import site; site.main();"
        " print(before, l.is_installed())",
        cwd=REPO / "kit",
    )
    assert started_by_site.stdout.strip() == "False True", started_by_site.stderr


def test_install_is_idempotent():
    code = (
        "import sys, channels1_kit.loader as l\n"
        "l.install(); l.install()\n"
        "print(sum(type(f).__name__ in ('FallbackFinder', 'FixupFinder') for f in sys.meta_path))\n"
    )
    assert run_python("-c", code).stdout.strip() == "2"


def test_importing_the_kit_imports_no_django():
    """The .pth runs in every interpreter of the environment: it must not drag Django or channels in."""
    code = (
        "import json, sys\n"
        "import channels1_kit, channels1_kit.loader, channels1_kit.asgi1\n"
        "heavy = {'django', 'channels', 'daphne', 'asgi_redis', 'asgiref', 'six', 'twisted', 'redis'}\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in heavy)))\n"
    )
    for loader in (True, False):
        result = run_python("-c", code, loader=loader)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [], f"loader={loader}"


# -- TransactionTestCase._pre_setup, a classmethod from Django 5.2 ---------------------------------

from channels import Channel  # noqa: E402  (after the subprocess probes, which need no Django)
from channels.test import TransactionChannelTestCase  # noqa: E402


class TestTransactionChannelTestCase(TransactionChannelTestCase):
    """Django 5.2 calls _pre_setup on the class in setUpClass; without the loader's fix of channels.test
    this class errors before its first test ("missing 1 required positional argument")."""

    def test_the_first_test_gets_the_in_memory_layer(self):
        Channel("kit.loader.first").send({"n": 1})
        assert self.get_next_message("kit.loader.first", require=True).content == {"n": 1}

    def test_every_later_test_gets_a_fresh_one(self):
        # Nothing sent by the other test is left: each test swapped in its own layer and back.
        assert self.get_next_message("kit.loader.first") is None
        Channel("kit.loader.second").send({"n": 2})
        assert self.get_next_message("kit.loader.second", require=True).content == {"n": 2}


def test_the_test_case_fix_applies_only_where_pre_setup_is_a_classmethod():
    import inspect

    from channels.test.base import ChannelTestCaseMixin
    from django.test import TransactionTestCase

    import channels1_kit.loader as loader

    needed = isinstance(inspect.getattr_static(TransactionTestCase, "_pre_setup"), classmethod)
    assert isinstance(inspect.getattr_static(ChannelTestCaseMixin, "_pre_setup"), classmethod) is needed
    assert (("channels.test.base", "_pre_setup as a classmethod") in loader.supplied) is needed
