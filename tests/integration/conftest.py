import os
from pathlib import Path

import pytest

from tests.integration.clients import Socket
from tests.support.prerequisites import require

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the `browser` fixture says so: a skip locally, a failure in CI
    expect = sync_playwright = None

from tools.site_stack import Stack

# A chat member whose last socket closed is told gone after this (15 s on the site): the tests
# that close a socket wait for its "left", and reconnect within it to show there is none.
PRESENCE_GRACE_SECONDS = 5


def running(site: Stack, prepare=lambda site: None):
    """A fixture's body for a stack: started (and prepared), yielded, stopped; if it fails to
    start, its processes' logs are printed and it is stopped before the error goes on."""
    try:
        site.start()
        prepare(site)
    except Exception:
        print(site.logs())
        site.stop()
        raise
    yield site
    site.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One running site for the integration tests that do not break anything."""
    settings = {"PRESENCE_GRACE_SECONDS": str(PRESENCE_GRACE_SECONDS)}
    yield from running(Stack(tmp_path_factory.mktemp("stack"), settings=settings))


@pytest.fixture(scope="session")
def users(stack):
    """Logins on the stack: alice and bob (plain), boss (staff). Password: the username twice."""
    return create_users(stack)


def create_users(stack) -> dict:
    stack.django(
        "from django.contrib.auth.models import User\n"
        "for name, staff in [('alice', False), ('bob', False), ('boss', True)]:\n"
        "    User.objects.create_user(name, password=name * 2, is_staff=staff)\n"
    )
    return {"alice": "alicealice", "bob": "bobbob", "boss": "bossboss"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item (item.rep_call) for fixtures that act on a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


CHROMIUM = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# An upper bound for anything to show up on a page, not an expectation of speed.
BROWSER_WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a module's browser tests.

    Playwright's sync API allows one at a time per process, and while it runs it leaves its event
    loop set as the thread's running loop, so Django refuses database work in that thread
    (SynchronousOnlyOperation). Scoped to the module, it is gone before any other module runs."""
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (set CHROMIUM_EXECUTABLE)")
    require(sync_playwright is not None, "the playwright package is not installed (requirements/dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        expect.set_options(timeout=BROWSER_WAIT_MS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_socket():
    """open_socket(url, cookie=..., ...): a real WebSocket, closed after the test."""
    opened = []

    def open_(url: str, **kwargs) -> Socket:
        sock = Socket(url, **kwargs)
        opened.append(sock)
        return sock

    yield open_
    for sock in opened:
        if sock.connected:
            sock.close()


@pytest.fixture
def layers(reactor):
    """Makes fan-out layers on a Redis URL, each with prefixes of its own unless given (pass the same
    prefix and stats_prefix to layers that must see each other's messages); flushes and closes them after."""
    import redis

    from fanout_layer import FanoutRedisChannelLayer
    from tests.fanout_layer.support import unique_prefixes

    made = []

    def make(url: str, **config) -> FanoutRedisChannelLayer:
        layer = FanoutRedisChannelLayer(hosts=[url], **{**unique_prefixes(), **config})
        # Short waits: a receive that waits on a failing connection gives up after these.
        layer.blpop_timeout = 1
        layer.reply_timeout = 2
        made.append(layer)
        return layer

    yield make
    for layer in made:
        try:
            layer.flush()
        except redis.exceptions.RedisError:
            pass  # a test that broke its Redis on purpose
        reactor.call(layer.disconnect_twisted)
