"""The compatibility loader: channels 1.1.8, daphne 1.4.2 and asgi_redis 1.4.3, unmodified, on
Django 2.2 to 5.2 and Python 3.11 to 3.13.

``channels1_kit.pth``, installed with the package, calls ``install()`` at every interpreter
start, so it is in place before anything imports channels or daphne: manage.py, runworker,
daphne (which imports channels before any settings load), gunicorn, pytest, ``python -m``.
Each fix below supplies something the old packages expect and the runtime lacks, and does
nothing where the runtime has it:

``asgiref.base_layer``, ``asgiref.inmemory``, ``asgiref.conformance``
    asgiref 3 (Django 3.0+) dropped the ASGI 1 modules; asgi_redis subclasses the first,
    channels.test uses the second. Served from channels1_kit.asgi1 when asgiref has none.
``django.utils.six`` (and ``.moves``)
    Removed in Django 3.0; channels imports it in five modules. Served as the six
    distribution when Django has none.
``Signal(providing_args=...)``
    Refused from Django 4.0; channels.signals passes it. While channels.signals runs, and
    only where Signal refuses the argument, it is accepted and dropped.
finders that only have ``find_module``
    Python 3.12 stopped calling them; Django 2.2's own six registers one for
    ``django.utils.six.moves``. Bridged on 3.12+ only.

What the loader cannot supply is pinned instead (requirements.txt): ``cgi`` (gone in
Python 3.13) from legacy-cgi, ``distutils`` (gone in 3.12; channels.package_checks uses
it) from setuptools. Set CHANNELS1_KIT_LOADER=0 to start an interpreter without it.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import types

# Module names served elsewhere when the installed distributions lack them: name -> where from.
FALLBACKS = {
    "asgiref.base_layer": "channels1_kit.asgi1.base_layer",
    "asgiref.inmemory": "channels1_kit.asgi1.inmemory",
    "asgiref.conformance": "channels1_kit.asgi1.conformance",
    "django.utils.six": "six",
}

# What this process was supplied, in the order the modules ran: (name, why). For tests and reports.
supplied: list[tuple[str, str]] = []


def install() -> None:
    """Puts the loader's finders on sys.meta_path, once; a no-op if CHANNELS1_KIT_LOADER=0."""
    if os.environ.get("CHANNELS1_KIT_LOADER", "1") == "0":
        return
    if any(isinstance(finder, FallbackFinder | ProvidingArgsFinder) for finder in sys.meta_path):
        return
    # First in line, to wrap channels.signals before the path finder loads it.
    sys.meta_path.insert(0, ProvidingArgsFinder())
    # Last in line: asked only for names that every real finder failed to find.
    sys.meta_path.append(FallbackFinder())


def is_installed() -> bool:
    return any(isinstance(finder, FallbackFinder) for finder in sys.meta_path)


def _fallback_target(fullname: str) -> str | None:
    """The module to serve for fullname, or None. A submodule (django.utils.six.moves) is served
    only when its parent is itself a fallback: beside Django 2.2's own six it is left alone."""
    for name, target in FALLBACKS.items():
        if fullname == name:
            return target
        if fullname.startswith(name + "."):
            parent = sys.modules.get(fullname.rpartition(".")[0])
            if parent is not None and parent is sys.modules.get(target + fullname[len(name) : fullname.rfind(".")]):
                return target + fullname[len(name) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads another module and puts it in sys.modules under the requested name too."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # The import system hands back whatever sys.modules holds for the name once this
        # returns, so the requested name becomes the target module itself, not a copy.
        sys.modules[module.__name__] = importlib.import_module(self.target)
        supplied.append((module.__name__, f"served from {self.target}"))


class FallbackFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        source = _fallback_target(fullname)
        if source is not None:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(source))
        if sys.version_info >= (3, 12):
            return _bridge_find_module(fullname, path)
        return None

    def invalidate_caches(self):
        pass


def _bridge_find_module(fullname: str, path) -> importlib.machinery.ModuleSpec | None:
    """A spec from a meta-path finder that only has the pre-3.4 find_module (Python 3.12+ skips them)."""
    for finder in list(sys.meta_path):
        if hasattr(finder, "find_spec") or not hasattr(finder, "find_module"):
            continue
        loader = finder.find_module(fullname, path)
        if loader is not None:
            supplied.append((fullname, f"bridged from {type(finder).__qualname__}.find_module"))
            is_package = bool(getattr(loader, "is_package", lambda name: False)(fullname))
            return importlib.util.spec_from_loader(fullname, loader, is_package=is_package)
    return None


def signal_accepts_providing_args() -> bool:
    from django.dispatch import Signal

    return "providing_args" in inspect.signature(Signal.__init__).parameters


class ProvidingArgsFinder(importlib.abc.MetaPathFinder):
    """Finds channels.signals as the path finder would, and runs it with a tolerant Signal if needed."""

    module = "channels.signals"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.module:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or signal_accepts_providing_args():
            return None
        spec.loader = _ProvidingArgsLoader(spec.loader)
        return spec

    def invalidate_caches(self):
        pass


class _ProvidingArgsLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        # get_source, get_filename...: tracebacks and linecache still find the real file.
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType):
        import django.dispatch

        signal = django.dispatch.Signal

        class LegacySignal(signal):
            """A Signal that accepts providing_args, documentation-only since Django 1.x, and drops it."""

            def __init__(self, providing_args=None, use_caching=False):
                super().__init__(use_caching=use_caching)

        LegacySignal.__name__ = LegacySignal.__qualname__ = signal.__name__
        LegacySignal.__module__ = signal.__module__
        # channels.signals runs `from django.dispatch import Signal`: it sees the subclass while
        # it runs, and everyone else keeps Django's own class.
        # The swap happens under the import lock of channels.signals; a thread that imports
        # Signal at that very moment gets the subclass, which behaves the same.
        django.dispatch.Signal = LegacySignal
        try:
            self.loader.exec_module(module)
        finally:
            django.dispatch.Signal = signal
        supplied.append((module.__name__, "Signal(providing_args=...) accepted"))
