"""The compatibility loader: channels 1.1.8, daphne 1.4.2 and asgi_redis 1.4.3, unmodified, on
Django 2.2 to 6.1 and Python 3.11 to 3.13.

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
``channels.delay``'s label ``channels.delay``
    Refused from Django 3.2 (a label must be an identifier), so the delay server could not be
    installed. Where it is refused, the app is labelled ``channels_delay``, its model keeps the
    old label's table ``channels.delay_delayedmessage`` (with any pending messages), and its
    initial migration replaces the old label's, so a database migrated on Django 2.2 counts as
    migrated.
``TransactionTestCase._pre_setup`` as a classmethod
    Django 5.2 calls it on the class; channels.test's mixin defines it per instance, so a
    ChannelTestCaseMixin with TransactionTestCase failed in setUpClass. Adapted there only.
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
    if any(isinstance(finder, FallbackFinder | FixupFinder) for finder in sys.meta_path):
        return
    # First in line, to wrap channels.signals before the path finder loads it.
    sys.meta_path.insert(0, FixupFinder())
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


def signal_refuses_providing_args() -> bool:
    from django.dispatch import Signal

    return "providing_args" not in inspect.signature(Signal.__init__).parameters


def pre_setup_is_a_classmethod() -> bool:
    from django.test import TransactionTestCase

    return isinstance(inspect.getattr_static(TransactionTestCase, "_pre_setup"), classmethod)


def _run_with_legacy_signal(loader, module: types.ModuleType) -> None:
    """Runs channels.signals, which passes providing_args (documentation-only since Django 1.x)."""
    import django.dispatch

    signal = django.dispatch.Signal

    class LegacySignal(signal):
        def __init__(self, providing_args=None, use_caching=False):
            super().__init__(use_caching=use_caching)

    LegacySignal.__name__ = LegacySignal.__qualname__ = signal.__name__
    LegacySignal.__module__ = signal.__module__
    # channels.signals runs `from django.dispatch import Signal`: it sees the subclass while
    # it runs, and everyone else keeps Django's own class. The swap happens under the import
    # lock of channels.signals; a thread importing Signal at that very moment gets the
    # subclass, which behaves the same.
    django.dispatch.Signal = LegacySignal
    try:
        loader.exec_module(module)
    finally:
        django.dispatch.Signal = signal


def _run_with_class_pre_setup(loader, module: types.ModuleType) -> None:
    """Runs channels.test.base, then makes ChannelTestCaseMixin._pre_setup a classmethod.

    Django 5.2's TransactionTestCase._pre_setup is a classmethod, which setUpClass calls on the
    class before the first test; channels' mixin defines it for an instance, so a mixin with
    TransactionTestCase failed with "missing 1 required positional argument". The mixin's own
    methods still do the work: its layer swap is kept on the class, and moved onto the test
    before its teardown, which expects it there.
    """
    loader.exec_module(module)
    mixin = module.ChannelTestCaseMixin
    pre_setup, post_teardown = mixin._pre_setup, mixin._post_teardown

    def _pre_setup(cls):
        pre_setup(cls)

    def _post_teardown(self):
        cls = type(self)
        if "_old_layers" in vars(cls):
            self._old_layers = vars(cls)["_old_layers"]
            delattr(cls, "_old_layers")
        post_teardown(self)

    mixin._pre_setup = classmethod(_pre_setup)
    mixin._post_teardown = _post_teardown


# channels.delay's label until Django 3.2 refused it, and the one its table and migration rows carry.
DELAY_LEGACY_LABEL = "channels.delay"
# The label it gets where the runtime wants an identifier.
DELAY_LABEL = "channels_delay"
# Where every site that ran channels.delay keeps its pending messages: the old label's table.
DELAY_TABLE = "channels.delay_delayedmessage"


def app_labels_must_be_identifiers() -> bool:
    """Does AppConfig refuse a dotted label, as channels.delay's (Django 3.2+)?"""
    from django.apps import AppConfig
    from django.core.exceptions import ImproperlyConfigured

    class Probe(AppConfig):
        label = "probe.dotted"
        path = os.curdir

    try:
        Probe("probe", types.ModuleType("probe"))
    except ImproperlyConfigured:
        return True
    return False


def _run_delay_apps(loader, module: types.ModuleType) -> None:
    """Runs channels.delay.apps with an identifier for a label, so that the app can be installed."""
    loader.exec_module(module)
    module.DelayConfig.label = DELAY_LABEL


def _run_delay_models(loader, module: types.ModuleType) -> None:
    """Runs channels.delay.models and keeps DelayedMessage in the table the old label named, with
    the messages an upgrading site has pending. As a Meta option (original_attrs), so that the
    migration state (_run_delay_initial_migration) and the model agree and makemigrations finds nothing."""
    loader.exec_module(module)
    options = module.DelayedMessage._meta
    options.db_table = DELAY_TABLE
    options.original_attrs["db_table"] = DELAY_TABLE


def _run_delay_initial_migration(loader, module: types.ModuleType) -> None:
    """Runs channels.delay's 0001_initial as the new label's: it creates the old label's table on a
    fresh database, and replaces the old label's 0001_initial, so that on a database migrated
    under that label (Django 2.2) it counts as applied and the table is left as it is."""
    loader.exec_module(module)
    migration = module.Migration
    (create,) = migration.operations
    create.options = {**create.options, "db_table": DELAY_TABLE}
    migration.replaces = [(DELAY_LEGACY_LABEL, "0001_initial")]


# Modules run with a fix where the runtime needs one: name -> (is it needed here?, how to run it, what it does).
FIXUPS = {
    "channels.signals": (signal_refuses_providing_args, _run_with_legacy_signal, "Signal(providing_args=...) accepted"),
    "channels.test.base": (pre_setup_is_a_classmethod, _run_with_class_pre_setup, "_pre_setup as a classmethod"),
    "channels.delay.apps": (app_labels_must_be_identifiers, _run_delay_apps, f"app label {DELAY_LABEL}"),
    "channels.delay.models": (app_labels_must_be_identifiers, _run_delay_models, f"table {DELAY_TABLE} kept"),
    "channels.delay.migrations.0001_initial": (
        app_labels_must_be_identifiers,
        _run_delay_initial_migration,
        f"creates {DELAY_TABLE}, replaces {DELAY_LEGACY_LABEL}.0001_initial",
    ),
}


class FixupFinder(importlib.abc.MetaPathFinder):
    """Finds a module of FIXUPS as the path finder would, and runs it with its fix if the runtime needs it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in FIXUPS:
            return None
        needed, _, _ = FIXUPS[fullname]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not needed():
            return None
        spec.loader = _FixupLoader(spec.loader)
        return spec

    def invalidate_caches(self):
        pass


class _FixupLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        # get_source, get_filename...: tracebacks and linecache still find the real file.
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType):
        _, run, what = FIXUPS[module.__name__]
        run(self.loader, module)
        supplied.append((module.__name__, what))
